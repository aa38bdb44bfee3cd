"""True counts and facets: how many documents match, whatever the rerank pool; paging past the
pool in the full-text order; counts on the language chips; a source facet and a date filter,
on the page and in the API. The figures are checked against PostgreSQL's own full-text match."""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from documents.inputs import DocumentInput
from documents.models import LIBRARY, Document
from documents.services import document_create
from documents.textsearch import TS_CONFIG
from search.services import search_run

pytestmark = pytest.mark.django_db

GENEROUS_SECONDS = 30.0
# A word in more than 20 documents of the sample library (all of them English).
COMMON_WORD = "time"
# A word no sample document has: the documents these tests add are all that match it.
OWN_WORD = "zyxquuxite"


@pytest.fixture(autouse=True)
def _worker_with_a_generous_budget(rerank_worker, settings):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS


def matching(word: str) -> int:
    """Return how many library documents hold `word`, by PostgreSQL's own tsvector match."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM documents_document WHERE collection = %(collection)s "
            "AND search_vector @@ plainto_tsquery(%(config)s::regconfig, %(word)s)",
            {"collection": LIBRARY, "config": TS_CONFIG, "word": word},
        )
        return cursor.fetchone()[0]


def test_the_count_is_of_every_match_not_of_the_rerank_pool():
    truth = matching(COMMON_WORD)
    outcome = search_run(query=COMMON_WORD, k=5, k_initial=5)
    assert truth > 10
    assert (outcome.total, outcome.total_exact, outcome.candidate_count) == (truth, True, 5)
    assert outcome.pages == math.ceil(truth / 5) and outcome.reranked_pages == 1


def test_paging_goes_past_the_pool_in_the_full_text_order():
    past = search_run(query=COMMON_WORD, k=5, k_initial=10, page=3)
    assert past.page == 3 and past.beyond_pool and past.rerank_status == "beyond_pool"
    assert past.reranked == [] and past.candidate_count == 10
    assert [row.fulltext_rank for row in past.fulltext] == [11, 12, 13, 14, 15]
    expected = search_run(query=COMMON_WORD, k=15, k_initial=20).fulltext[10:15]
    assert [row.document_id for row in past.fulltext] == [row.document_id for row in expected]
    assert all(row.snippet for row in past.fulltext)
    assert "reranked order covers pages 1–2" in past.rerank_summary


def test_the_page_says_how_many_match_and_what_the_reranked_order_covers(client):
    truth = matching(COMMON_WORD)
    html = client.get("/search", {"q": COMMON_WORD, "k": 5, "k_initial": 10, "page": 3}).content.decode()
    assert f'<span class="total">{truth} results</span>' in html
    assert "reranked: the first 10 (pages 1–2)" in html
    assert "this page is past them, in full-text order only" in html
    # A phone opens such a page on the full-text order (the reranked tab has nothing).
    assert re.search(r'id="show-fulltext" checked', html)


def test_the_language_chips_and_the_api_count_each_language():
    # "apple" is in English documents, 苹果 in Chinese ones, both in mixed ones.
    query = "苹果 apple"
    outcome = search_run(query=query, k=10)
    languages = outcome.facets.languages
    assert sum(languages.values()) == outcome.total
    assert set(languages) <= {"zh", "en", "mixed"} and languages.get("zh") and languages.get("en")
    only_zh = search_run(query=query, k=10, language="zh")
    assert only_zh.total == languages.get("zh", 0) + languages.get("mixed", 0)
    # Facet counts ignore their own filter: the chips read the same under any language.
    assert only_zh.facets.languages == languages


def test_the_api_reports_the_count_the_pages_and_the_facets(client):
    truth = matching(COMMON_WORD)
    body = client.get("/api/v1/search", {"q": COMMON_WORD, "k": 5, "k_initial": 10, "page": 3}).json()
    assert (body["total"], body["total_exact"], body["candidate_count"]) == (truth, True, 10)
    assert (body["page"], body["pages"], body["reranked_pages"]) == (3, math.ceil(truth / 5), 2)
    assert body["rerank_status"] == "beyond_pool" and body["reranked"] == []
    assert [row["rank"] for row in body["fulltext"]] == [11, 12, 13, 14, 15]
    facets = body["facets"]
    assert facets["exact"] is True
    assert {item["value"]: item["count"] for item in facets["language"]}["all"] == truth
    assert {item["value"] for item in facets["added"]} == {"any", "day", "week", "month", "year"}
    assert facets["source"] == [{"value": "sample-library", "count": truth}]


def test_a_count_over_the_budget_is_an_estimate_and_says_so(client, settings):
    truth = matching(COMMON_WORD)
    settings.SEARCH_COUNT_POSTINGS = 5  # fewer postings than the word has: a sample
    outcome = search_run(query=COMMON_WORD, k=5, k_initial=10)
    assert outcome.total_exact is False and not outcome.facets.exact
    assert truth / 2 <= outcome.total <= truth * 2, (outcome.total, truth)
    # (Deep enough to find every match, a search knows the count exactly: k_initial stays small.)
    asked = {"q": COMMON_WORD, "k": 5, "k_initial": 10}
    html = client.get("/search", asked).content.decode()
    assert f"about {outcome.total} results" in html and "(estimated" in html
    assert client.get("/api/v1/search", asked).json()["total_exact"] is False


@pytest.fixture
def own_documents() -> list[Document]:
    """Three documents of two sources holding OWN_WORD, one added 40 days ago, one 400 days ago."""
    made = [
        document_create(
            item=DocumentInput(
                title=f"{OWN_WORD} note {i}", body=f"About {OWN_WORD}, part {i}.", source=source, language="en"
            )
        ).document
        for i, source in enumerate(["notes.md", "notes.md", "https://example.com/page"])
    ]
    Document.objects.filter(pk=made[1].pk).update(created_at=timezone.now() - timedelta(days=40))
    Document.objects.filter(pk=made[2].pk).update(created_at=timezone.now() - timedelta(days=400))
    return made


def test_a_source_facet_and_a_date_filter(own_documents, client):
    outcome = search_run(query=OWN_WORD, k=10)
    assert outcome.total == 3
    assert outcome.facets.sources == [("notes.md", 2), ("https://example.com/page", 1)]
    assert outcome.facets.added == {"any": 3, "day": 1, "week": 1, "month": 1, "year": 2}
    of_source = search_run(query=OWN_WORD, k=10, source="notes.md")
    assert of_source.total == 2 and {row.document_id for row in of_source.fulltext} == {d.pk for d in own_documents[:2]}
    assert of_source.facets.sources == outcome.facets.sources  # its own filter left out
    assert of_source.facets.added == {"any": 2, "day": 1, "week": 1, "month": 1, "year": 2}
    recent = search_run(query=OWN_WORD, k=10, added="month")
    assert recent.total == 1 and [row.document_id for row in recent.fulltext] == [own_documents[0].pk]
    assert search_run(query=OWN_WORD, k=10, added="year", source="notes.md").total == 2

    body = client.get("/api/v1/search", {"q": OWN_WORD, "source": "notes.md", "added": "month"}).json()
    assert (body["total"], body["source"], body["added"]) == (1, "notes.md", "month")
    assert {item["value"]: item["count"] for item in body["facets"]["added"]}["year"] == 2
    html = client.get("/search", {"q": OWN_WORD, "source": "notes.md"}).content.decode()
    assert '<span class="chip current" aria-current="true">notes.md</span>' in html
    assert "?q=zyxquuxite&amp;source=https%3A%2F%2Fexample.com%2Fpage" in html
    assert 'Past month <span class="count">1</span>' in html
    assert client.get("/search", {"q": OWN_WORD, "added": "decade"}).status_code == 400
    assert client.get("/api/v1/search", {"q": OWN_WORD, "added": "decade"}).status_code == 400


@pytest.mark.parametrize(
    ("query", "tsquery"),
    [('"python packages"', "python <-> packages"), ("python -snake", "python & !snake")],
    ids=["phrase", "exclusion"],
)
def test_the_count_keeps_the_querys_phrases_and_exclusions(query, tsquery):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM documents_document WHERE collection = %(collection)s "
            "AND search_vector @@ to_tsquery(%(config)s::regconfig, %(tsquery)s)",
            {"collection": LIBRARY, "config": TS_CONFIG, "tsquery": tsquery},
        )
        truth = cursor.fetchone()[0]
    outcome = search_run(query=query, k=10, k_initial=5)
    assert truth > 0 and (outcome.total, outcome.total_exact) == (truth, True)


def test_a_search_that_finds_nothing_is_not_past_the_pool(client):
    # An empty pool has no end to be past: page 1 of nothing is skipped, not "beyond_pool".
    body = client.get("/api/v1/search", {"q": "zzqxjvwk"}).json()
    assert (body["total"], body["fulltext"], body["rerank_status"]) == (0, [], "skipped")
