"""Work a visitor controls stays bounded: the document page shows one page of a long document and
highlights only that, a query stems each distinct word once, and no query scans more than its
budget of text for matches. The document page is throttled like search.

Timing is measured in bench/bounded_pages.py (docs/reliability.md), never asserted here.
"""

from __future__ import annotations

import itertools
import math
import random
import re

import pytest
from bs4 import BeautifulSoup
from django.core.cache import cache
from django.test import Client

from documents.services import DocumentInput, document_create
from search import highlight
from search.highlight import SCAN_BUDGET_CHARS, count_matches, find_matches, query_terms, snippet
from search.throttling import DocumentPageThrottle
from search.views import DOCUMENT_PAGE_CHARS, page_spans
from tests.support.clients import unique_address

pytestmark = pytest.mark.django_db

# Words of the long document; the marker words appear only where the test puts them.
FILLER = ["river", "stone", "window", "garden", "letter", "morning", "bridge", "candle", "orchard", "silver"]
LATE_WORD = "zeppelinword"  # only on the last line, past the scan budget
THIRD_PAGE_WORD = "quokkaword"  # first on page 3
LINE_WORDS = 6


def long_body(lines: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(FILLER) for _ in range(LINE_WORDS)) for _ in range(lines))


@pytest.fixture(scope="module")
def long_document(django_db_setup, django_db_blocker):
    """A 1.5 MB, 36,000-line document in the library (committed; deleted after the module)."""
    from documents.services import documents_delete

    body = long_body(36_000)
    spans = page_spans(body)
    third_start, third_end = spans[2]
    middle = body.index("\n", third_start + (third_end - third_start) // 2)
    body = f"{body[:middle]}\n{THIRD_PAGE_WORD} appears here{body[middle:]}\nthe end {LATE_WORD}"
    with django_db_blocker.unblock():
        document = document_create(item=DocumentInput(title="A very long ledger", body=body)).document
    yield document
    with django_db_blocker.unblock():
        documents_delete(documents=[document])


def shown_text(html: str) -> tuple[str, list[str]]:
    """Return the document text shown on the page and the marked words."""
    soup = BeautifulSoup(html, "html.parser")
    article = soup.select_one("article.document")
    paragraphs = [p for p in article.find_all("p", recursive=False) if "meta" not in (p.get("class") or [])]
    paragraphs = [p for p in paragraphs if "notice" not in (p.get("class") or [])]
    return "\n\n".join(p.get_text() for p in paragraphs), [mark.get_text() for mark in article.find_all("mark")]


def test_it_cuts_a_body_into_pages_that_cover_it_exactly():
    body = long_body(3_000) + "\n\n" + "x" * 50_000  # a 50,000-character "word" is cut too
    spans = page_spans(body)
    assert spans[0][0] == 0 and spans[-1][1] == len(body)
    assert all(end == next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    assert all(0 < end - start <= DOCUMENT_PAGE_CHARS for start, end in spans)
    assert page_spans("") == [(0, 0)]


def test_it_shows_one_page_of_a_long_document(client, long_document):
    spans = page_spans(long_document.body)
    response = client.get(f"/documents/{long_document.pk}", {"q": "zzzz"})

    assert response.status_code == 200
    text, marks = shown_text(response.content.decode())
    assert len(text) <= DOCUMENT_PAGE_CHARS and not marks
    page = response.context["page"]
    assert (page.number, page.count) == (1, len(spans))
    # Looking for a match stops within the scan budget, a page's worth kept to show the page.
    assert page.match_search_stopped
    assert page.pages_searched * DOCUMENT_PAGE_CHARS <= SCAN_BUDGET_CHARS
    assert f"No match for your query in the first {page.pages_searched} pages" in response.content.decode()


def test_it_opens_on_the_first_page_with_a_match(client, long_document):
    response = client.get(f"/documents/{long_document.pk}", {"q": THIRD_PAGE_WORD})

    assert response.context["page"].number == 3
    text, marks = shown_text(response.content.decode())
    assert marks == [THIRD_PAGE_WORD]
    start, end = page_spans(long_document.body)[2]
    assert " ".join(text.split()) == " ".join(long_document.body[start:end].split())
    assert "The first match for your query is on page 3" in response.content.decode()


def test_it_highlights_a_page_asked_for_and_links_its_neighbours(client, long_document):
    last = len(page_spans(long_document.body))
    response = client.get(f"/documents/{long_document.pk}", {"q": LATE_WORD, "page": str(last)})

    assert response.status_code == 200
    html = response.content.decode()
    assert shown_text(html)[1] == [LATE_WORD]
    soup = BeautifulSoup(html, "html.parser")
    assert soup.select_one('a[rel="prev"]')["href"] == f"?q={LATE_WORD}&page={last - 1}"
    assert soup.select_one('a[rel="next"]') is None


@pytest.mark.parametrize("page", ["abc", "0", "-1", "5_0", "٣", "99999"])
def test_it_answers_404_for_a_page_that_is_not_there(client, long_document, page):
    assert client.get(f"/documents/{long_document.pk}", {"page": page}).status_code == 404


def test_it_stems_each_distinct_word_once_per_query():
    # Words no earlier test has stemmed, so the process-wide cache cannot hide the calls.
    rng = random.Random()
    fresh = ["".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(9)) + "ing" for _ in range(40)]
    chunks = [" ".join(rng.choice(fresh) for _ in range(300)) for _ in range(200)]  # 60,000 words
    terms = query_terms(f"{fresh[0]} apples")
    before = highlight._stem_lower.cache_info()

    total = sum(count_matches(chunk, terms) for chunk in chunks)
    marked = sum(len(find_matches(chunk, terms)) for chunk in chunks[:20])
    for chunk in chunks[:20]:
        snippet(chunk, terms)

    after = highlight._stem_lower.cache_info()
    stem_calls = (after.hits + after.misses) - (before.hits + before.misses)
    # Once per distinct word (a snippet's window may cut a word at each edge: a new form), not
    # once per word of every chunk (60,000).
    assert stem_calls <= len(set(fresh)) + 2 * 20
    assert total == sum(chunk.split().count(fresh[0]) for chunk in chunks)
    assert marked == sum(chunk.split().count(fresh[0]) for chunk in chunks[:20])


def test_it_scans_no_more_than_its_budget_per_query():
    terms = query_terms("orchard")
    text = long_body(20_000)  # about 840,000 characters
    per_text = text.count("orchard")
    texts = [text] * math.ceil(3 * SCAN_BUDGET_CHARS / len(text))

    found = [count_matches(piece, terms) for piece in texts]

    assert terms.scan_budget == 0
    assert found[0] == per_text  # the budget holds the first text whole
    assert sum(found) < per_text * 2  # and ends inside the second one
    assert all(count == 0 for count in found[2:])
    # Text beyond the budget is still shown, escaped, only unmarked.
    shown = highlight.highlight("<b>orchard</b>", terms)
    assert shown == "&lt;b&gt;orchard&lt;/b&gt;"


def test_it_throttles_the_document_page(client, monkeypatch, long_document, plain_user, staff_client):
    monkeypatch.setattr(
        DocumentPageThrottle, "THROTTLE_RATES", {"anon_document_page": "2/min", "user_document_page": "3/min"}
    )
    address = unique_address()
    url = f"/documents/{long_document.pk}"
    signed_in = Client()
    signed_in.force_login(plain_user)
    try:
        assert [client.get(url, REMOTE_ADDR=address).status_code for _ in range(2)] == [200, 200]
        throttled = client.get(url, {"q": "stone"}, REMOTE_ADDR=address)
        assert throttled.status_code == 429
        assert 1 <= int(throttled["Retry-After"]) <= 60
        assert re.search(r"try again in \d+ second", throttled.content.decode())
        assert client.get(url, REMOTE_ADDR=unique_address()).status_code == 200
        # A signed-in user has a rate of their own, wherever they connect from; staff have none.
        assert [signed_in.get(url, REMOTE_ADDR=address).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert {staff_client.get(url, REMOTE_ADDR=address).status_code for _ in range(4)} == {200}
    finally:
        cache.delete_many(
            [f"throttle_anon_document_page_{address}", f"throttle_user_document_page_user-{plain_user.pk}"]
        )
