"""Judgments take any text and number without a 500 (issue 25, findings 4, 5 and 12): the query is
normalised before it is cut, the rank is capped on the page form as in the API, and a filter
value PostgreSQL cannot hold (NUL) is refused."""

from __future__ import annotations

import pytest

from evaluation.models import RANK_MAX, Judgment

pytestmark = pytest.mark.django_db

# One code point that NFC turns into three (HEBREW LETTER SHIN WITH DAGESH AND SHIN DOT).
EXPANDING = "\ufb2c"
QUERY_COLUMN = Judgment._meta.get_field("query").max_length


def page_judge(client, document_id: int, *, query: str = "apple", rank: str = "1"):
    form = {"query": query, "document_id": document_id, "relevant": "1", "rank": rank, "back": "?q=apple"}
    return client.post("/judgments", form)


def test_the_api_normalises_a_query_before_cutting_it(staff_api, documents):
    response = staff_api.post(
        "/api/v1/judgments", {"query": EXPANDING * 500, "document_id": documents[0].pk, "relevant": True}, format="json"
    )

    assert response.status_code == 201, response.content[:300]
    stored = Judgment.objects.get().query
    assert (
        len(stored) == QUERY_COLUMN
        and stored == "\u05e9\u05bc\u05c1" * (QUERY_COLUMN // 3) + "\u05e9\u05bc"[: QUERY_COLUMN % 3]
    )


def test_the_page_form_normalises_a_query_before_cutting_it(staff_client, documents):
    response = page_judge(staff_client, documents[0].pk, query=EXPANDING * 500)

    assert response.status_code == 302, response.content[:300]
    assert len(Judgment.objects.get().query) == QUERY_COLUMN


@pytest.mark.parametrize("rank", ["9999999999", str(RANK_MAX + 1)])
def test_the_page_form_refuses_a_rank_past_the_cap(staff_client, documents, rank):
    response = page_judge(staff_client, documents[0].pk, rank=rank)

    assert response.status_code == 400
    assert f"rank must be 1 to {RANK_MAX:,}" in response.content.decode()
    assert not Judgment.objects.exists()


def test_the_page_form_takes_the_deepest_rank(staff_client, documents):
    assert page_judge(staff_client, documents[0].pk, rank=str(RANK_MAX)).status_code == 302
    assert Judgment.objects.get().rank == RANK_MAX


def test_the_api_refuses_a_language_filter_it_does_not_know(staff_api):
    for value in ["\x00", "en\x00", "fr"]:
        response = staff_api.get("/api/v1/judgments", {"language": value})

        assert response.status_code == 400, (value, response.content[:300])
        assert "One of: en, zh, mixed" in response.json()["fields"]["language"][0]
    assert staff_api.get("/api/v1/judgments", {"language": "zh"}).status_code == 200
