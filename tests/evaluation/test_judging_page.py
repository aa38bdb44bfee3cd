"""Judging on the result page: plain forms, back to the results, one grade per judge; public and staff."""

from __future__ import annotations

import pytest
from django.test import Client

from evaluation.models import Judgment
from tests.support.clients import unique_address

pytestmark = pytest.mark.django_db

QUERY = "python snake diet"


def judge(client: Client, document_id: int, relevant: str, *, ordering: str = "reranked", rank: int = 1):
    return client.post(
        "/judgments",
        {
            "query": QUERY,
            "document_id": document_id,
            "relevant": relevant,
            "ordering": ordering,
            "rank": rank,
            "back": f"?q={QUERY}&page=1&lang=en",
        },
    )


def test_it_records_a_staff_judgment_and_goes_back_to_the_results(staff_client, staff_user, documents):
    response = judge(staff_client, documents[0].pk, "1", ordering="fulltext", rank=3)
    assert response.status_code == 302
    assert (
        response["Location"] == f"/search?q=python+snake+diet&page=1&lang=en&view=fulltext#fulltext-{documents[0].pk}"
    )
    judgment = Judgment.objects.get()
    assert (judgment.query, judgment.grade, judgment.ordering, judgment.rank) == (QUERY, 1, "fulltext", 3)
    assert judgment.user == staff_user and judgment.by_staff and judgment.client_hash == ""
    assert judgment.language == "en"
    assert judgment.document_hash == documents[0].content_hash


def test_it_counts_a_visitors_repeated_clicks_once(client, documents):
    for _ in range(3):
        assert judge(client, documents[0].pk, "1").status_code == 302
    assert Judgment.objects.count() == 1
    judge(client, documents[0].pk, "0")  # changing one's mind updates the judgment
    assert list(Judgment.objects.values_list("grade", flat=True)) == [0]
    # The same query typed with other spacing is the same query.
    client.post("/judgments", {"query": "  python   snake diet ", "document_id": documents[0].pk, "relevant": "1"})
    assert list(Judgment.objects.values_list("query", "grade")) == [(QUERY, 1)]


def test_it_keeps_anonymous_judges_apart_by_a_salted_hash(documents):
    address = unique_address()
    first, second = Client(REMOTE_ADDR=address), Client(REMOTE_ADDR=unique_address())
    judge(first, documents[0].pk, "1")
    judge(second, documents[0].pk, "0")
    hashes = set(Judgment.objects.values_list("client_hash", flat=True))
    assert len(hashes) == 2
    assert all(len(h) == 64 and address not in h for h in hashes)
    assert not Judgment.objects.filter(by_staff=True).exists()
    assert all(j.user_id is None for j in Judgment.objects.all())


def test_it_shows_what_the_visitor_already_judged(client, documents, rerank_worker):
    page = client.get("/search", {"q": QUERY})
    shown = [row.document_id for row in page.context["outcome"].fulltext]
    assert page.content.decode().count('class="judge"') == len(shown) + len(page.context["outcome"].reranked)
    judge(client, shown[0], "1")
    judge(client, shown[1], "0")
    html = client.get("/search", {"q": QUERY}).content.decode()
    assert "You judged: relevant" in html and "You judged: not relevant" in html
    assert 'class="judge-yes chosen" aria-pressed="true"' in html
    assert 'class="judge-no chosen" aria-pressed="true"' in html
    # Another visitor sees no one else's judgments.
    other = Client(REMOTE_ADDR=unique_address()).get("/search", {"q": QUERY}).content.decode()
    assert "You judged" not in other


def test_it_comes_back_on_the_tab_that_was_judged(client, documents, rerank_worker):
    reranked_tab = client.get(judge(client, documents[0].pk, "1")["Location"]).content.decode()
    assert 'id="show-reranked" checked' in reranked_tab and 'id="show-fulltext" checked' not in reranked_tab
    fulltext_tab = client.get(judge(client, documents[0].pk, "1", ordering="fulltext")["Location"]).content.decode()
    assert 'id="show-fulltext" checked' in fulltext_tab and 'id="show-reranked" checked' not in fulltext_tab


def test_it_needs_the_csrf_token(documents):
    strict = Client(enforce_csrf_checks=True, REMOTE_ADDR=unique_address())
    assert judge(strict, documents[0].pk, "1").status_code == 403
    assert not Judgment.objects.exists()


def test_it_refuses_bad_input_with_a_page_and_stores_nothing(client, documents):
    assert judge(client, documents[0].pk, "maybe").status_code == 400
    missing = judge(client, 999_999_999, "1")
    assert missing.status_code == 404 and "No document" in missing.content.decode()
    assert client.post("/judgments", {"query": "", "document_id": documents[0].pk, "relevant": "1"}).status_code == 400
    assert client.get("/judgments").status_code == 405
    assert not Judgment.objects.exists()


def test_it_throttles_public_judging(client, documents, judging_rate):
    judging_rate("2/min")
    assert judge(client, documents[0].pk, "1").status_code == 302
    assert judge(client, documents[1].pk, "1").status_code == 302
    refused = judge(client, documents[2].pk, "1")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert Judgment.objects.count() == 2


def test_it_does_not_throttle_staff(staff_client, documents, judging_rate):
    judging_rate("1/min")
    for document in documents:
        assert judge(staff_client, document.pk, "1").status_code == 302
    assert Judgment.objects.count() == len(documents)


def test_it_switches_public_judging_off(client, staff_client, documents, settings, rerank_worker):
    settings.JUDGMENTS_PUBLIC = False
    refused = judge(client, documents[0].pk, "1")
    assert refused.status_code == 403 and "staff only" in refused.content.decode()
    assert 'class="judge"' not in client.get("/search", {"q": QUERY}).content.decode()
    # Staff still judge, and see the controls.
    assert judge(staff_client, documents[0].pk, "1").status_code == 302
    assert 'class="judge"' in staff_client.get("/search", {"q": QUERY}).content.decode()
    assert list(Judgment.objects.values_list("by_staff", flat=True)) == [True]
