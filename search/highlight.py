"""Query terms and highlighted snippets: escape the text first, then add the <mark> tags.

English words match by their Snowball stem (the algorithm behind PostgreSQL's `english`
configuration), Chinese words by exact substring, so the marks line up with what matched.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import snowballstemmer
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from documents.textsearch import CJK_RUN, segment_words

# A Snowball stemmer keeps the word it works on in itself: concurrent requests (threaded web
# servers) each need their own, or they corrupt each other's words (IndexError, wrong stems).
_stemmers = threading.local()
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")
# Words and tokens that are query syntax, not terms.
OPERATORS = {"or", "and", "not"}
SNIPPET_CHARS = 240
# A Chinese character is about as wide and as informative as two Latin ones.
SNIPPET_CHARS_CJK = 110


@dataclass
class QueryTerms:
    stems: set[str] = field(default_factory=set)
    cjk_words: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.stems or self.cjk_words)


def stem(word: str) -> str:
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    return stemmer.stemWord(word.lower().replace("’", "'"))


def query_terms(query: str) -> QueryTerms:
    """Return the positive terms of a web-search style query (excluded `-terms` left out)."""
    terms = QueryTerms()
    for token in re.findall(r'-?"[^"]*"?|\S+', query):
        if token.startswith("-"):
            continue
        text = token.strip('"')
        for word in WORD.findall(text):
            if word.lower() not in OPERATORS:
                terms.stems.add(stem(word))
        for run in CJK_RUN.findall(text):
            for word in segment_words(run):
                if CJK_RUN.fullmatch(word) and word not in terms.cjk_words:
                    terms.cjk_words.append(word)
    return terms


def find_matches(text: str, terms: QueryTerms) -> list[tuple[int, int]]:
    """Return sorted, non-overlapping (start, end) spans of `text` that match a query term."""
    spans: list[tuple[int, int]] = []
    if terms.stems:
        for match in WORD.finditer(text):
            if stem(match.group()) in terms.stems:
                spans.append(match.span())
    for word in sorted(terms.cjk_words, key=len, reverse=True):
        start = text.find(word)
        while start != -1:
            spans.append((start, start + len(word)))
            start = text.find(word, start + len(word))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            continue
        merged.append((start, end))
    return merged


def count_matches(text: str, terms: QueryTerms) -> int:
    return len(find_matches(text, terms))


def highlight(text: str, terms: QueryTerms) -> SafeString:
    """Return `text` HTML-escaped with every match wrapped in <mark>."""
    pieces: list[str] = []
    position = 0
    for start, end in find_matches(text, terms):
        pieces.append(escape(text[position:start]))
        pieces.append(f"<mark>{escape(text[start:end])}</mark>")
        position = end
    pieces.append(escape(text[position:]))
    return mark_safe("".join(pieces))  # noqa: S308 - every piece above is escaped


def snippet(text: str, terms: QueryTerms, width: int | None = None) -> SafeString:
    """Return the `width`-character window of `text` with the most matches, highlighted."""
    text = " ".join(text.split())
    if width is None:
        cjk = sum(len(run) for run in CJK_RUN.findall(text[:1000]))
        width = SNIPPET_CHARS_CJK if cjk * 2 > min(len(text), 1000) else SNIPPET_CHARS
    if len(text) <= width:
        return highlight(text, terms)
    matches = find_matches(text, terms)
    best_start, best_count = 0, -1
    for start, _ in matches:
        window_start = max(0, start - width // 4)
        count = sum(1 for s, e in matches if s >= window_start and e <= window_start + width)
        if count > best_count:
            best_start, best_count = window_start, count
    # Begin at a word boundary when the window starts inside English text.
    if best_start > 0:
        space = text.find(" ", best_start, best_start + 20)
        if space != -1 and not CJK_RUN.match(text[best_start : best_start + 1]):
            best_start = space + 1
    window = text[best_start : best_start + width]
    prefix = "… " if best_start > 0 else ""
    suffix = " …" if best_start + width < len(text) else ""
    return mark_safe(escape(prefix) + highlight(window, terms) + escape(suffix))  # noqa: S308
