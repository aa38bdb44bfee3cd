"""Pages of results, the language filter, "did you mean" and the way back from a document."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from documents.models import LIBRARY, Document
from search.services import search_run

pytestmark = pytest.mark.django_db

# Seconds the tests let the real worker take (a fresh worker's first inference is slow).
GENEROUS_SECONDS = 30.0


@pytest.fixture(autouse=True)
def _worker_with_a_generous_budget(rerank_worker, settings):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS


# A word in more than 20 documents of the sample library (all of them English).
COMMON_WORD = "time"


def test_it_pages_both_orderings_over_the_reranked_candidates(settings):
    settings.RERANK_CACHE_SECONDS = 300
    first = search_run(query=COMMON_WORD, k=5, k_initial=20)
    second = search_run(query=COMMON_WORD, k=5, k_initial=20, page=2)
    assert first.is_reranked and second.is_reranked
    assert first.candidate_count == second.candidate_count == 20
    # Both orderings over the 20 candidates (4 pages); the full-text order goes on past them.
    assert (first.reranked_pages, second.page) == (4, 2)
    assert first.pages == -(-first.total // 5) > 4
    assert [r.fulltext_rank for r in second.fulltext] == [6, 7, 8, 9, 10]
    assert [r.rerank_rank for r in second.reranked] == [6, 7, 8, 9, 10]
    # One reranking for all pages: page 2 continues page 1's reranked order.
    shown = [r.document_id for r in first.reranked + second.reranked]
    assert len(set(shown)) == 10


def test_it_shows_the_last_page_with_a_notice_when_asked_for_too_far():
    outcome = search_run(query=COMMON_WORD, k=5, k_initial=10, page=99)
    last = -(-outcome.total // 5)
    assert outcome.page == outcome.pages == last < 99
    assert any(f"fill only {last} pages" in notice for notice in outcome.notices)


def test_it_links_pages_that_keep_the_query_and_the_filter(client):
    response = client.get("/search", {"q": COMMON_WORD, "k": 5, "k_initial": 20, "lang": "en", "page": 2})
    html = response.content.decode()
    pager = re.search(r'<nav class="pager results-pager".*?</nav>', html, re.S).group(0)
    links = [parse_qs(urlsplit(href.replace("&amp;", "&")).query) for href in re.findall(r'href="([^"]+)"', pager)]
    assert {tuple(link["q"]) for link in links} == {(COMMON_WORD,)}
    assert all(link["lang"] == ["en"] and link["k"] == ["5"] for link in links)
    last = response.context["outcome"].pages
    # prev, 1, 3, 4, the last, next (pages near the current one, and the last)
    expected = sorted(["1", "1", "3", "3", "4", str(last)])
    assert sorted(link.get("page", ["1"])[0] for link in links) == expected
    assert '<span class="where" aria-current="page">2</span>' in pager


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_it_filters_by_language_on_the_page_and_in_the_api(client, lang):
    page = client.get("/search", {"q": "苹果 apple", "lang": lang, "k": 50}).context["outcome"]
    api = client.get("/api/v1/search", {"q": "苹果 apple", "lang": lang, "k": 50}).json()
    allowed = {lang, "mixed"}
    assert page.fulltext and {row.language for row in page.fulltext} <= allowed
    assert api["language"] == lang
    assert [row["document_id"] for row in api["fulltext"]] == [row.document_id for row in page.fulltext]
    everything = client.get("/api/v1/search", {"q": "苹果 apple", "k": 50}).json()
    assert everything["candidate_count"] > api["candidate_count"]


def test_it_refuses_an_unknown_language_filter(client):
    assert client.get("/search", {"q": "apple", "lang": "fr"}).status_code == 400
    assert client.get("/api/v1/search", {"q": "apple", "lang": "fr"}).status_code == 400


def test_it_suggests_a_correction_on_the_page_and_in_the_api(client):
    html = client.get("/search", {"q": "pythn snake"}).content.decode()
    assert 'Did you mean <a href="?q=python+snake">python snake</a>?' in html
    assert client.get("/api/v1/search", {"q": "jagaur speed"}).json()["suggestion"] == "jaguar speed"
    assert client.get("/api/v1/search", {"q": "python snake"}).json()["suggestion"] is None
    # A word found by its completions (python) is not offered another word one edit away (path).
    unfinished = client.get("/api/v1/search", {"q": "pyth"}).json()
    assert unfinished["fulltext"] and unfinished["suggestion"] is None


def test_it_links_a_document_back_to_the_results_it_was_opened_from(client):
    html = client.get("/search", {"q": COMMON_WORD, "k": 5, "page": 2, "lang": "en"}).content.decode()
    href = re.search(r'<a class="title" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    document = client.get(href).content.decode()
    back = re.search(r'<p class="back"><a href="([^"]+)">', document).group(1).replace("&amp;", "&")
    assert urlsplit(back).path == "/search"
    assert parse_qs(urlsplit(back).query) == {"q": [COMMON_WORD], "k": ["5"], "page": ["2"], "lang": ["en"]}


def test_it_never_follows_a_foreign_back_link(client):
    document = Document.objects.filter(collection=LIBRARY).first()
    html = client.get(f"/documents/{document.pk}", {"q": "apple", "back": "//evil.example/?q=x&next=//evil"}).content
    back = re.search(rb'<p class="back"><a href="([^"]+)">', html).group(1).decode().replace("&amp;", "&")
    assert back.startswith("/search?")
    assert "evil" not in back.replace("q=x", "")
