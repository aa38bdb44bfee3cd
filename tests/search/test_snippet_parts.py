"""Search results carry a plain-text snippet and its highlight offsets beside the HTML one (issue
26 §4): snippet_text is the HTML's text unescaped, and each [start, end) in snippet_highlights
is one <mark>ed match of the query in it."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search.highlight import query_terms, snippet, snippet_parts

WORDS = ["apple", "Apples", "<b>", "&amp;", "苹果", "营养", "'", '"', "mark", "</mark>", "x", "🍎", "é"]


@settings(max_examples=200, deadline=None, database=None)
@given(
    words=st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=5)), max_size=120),
    query=st.sampled_from(["apple", "苹果 apple", "mark", "x"]),
)
def test_the_plain_text_and_offsets_say_what_the_html_does(words, query):
    terms = query_terms(query)
    shown = snippet(" ".join(words), terms)

    text, marks = snippet_parts(shown)

    marked = [html.unescape(piece) for piece in re.findall(r"<mark>(.*?)</mark>", shown)]
    assert [text[start:end] for start, end in marks] == marked
    assert text == html.unescape(re.sub(r"</?mark>", "", shown))
    assert all(0 <= start < end <= len(text) for start, end in marks)


@pytest.mark.django_db
def test_the_search_api_gives_both_orderings_the_plain_snippet(client, settings, rerank_worker):
    settings.RERANK_TIMEOUT = 30.0
    body = client.get("/api/v1/search", {"q": "apple", "k": 3}).json()

    assert body["fulltext"] and body["reranked"]
    for ordering in ("fulltext", "reranked"):
        for result in body[ordering]:
            text, marks = snippet_parts(result["snippet"])
            assert result["snippet_text"] == text
            assert result["snippet_highlights"] == [list(mark) for mark in marks]
            assert any(text[start:end].lower().startswith("apple") for start, end in marks)
