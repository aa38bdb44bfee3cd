"""Query terms and highlighted snippets: escape the text first, then add the <mark> tags.

English words match by their Snowball stem (the algorithm behind PostgreSQL's `english`
configuration), Chinese words by exact substring, so the marks line up with what matched.

The work is bounded per query: each distinct word of the text is stemmed once per query (its
answer is remembered in the query's `QueryTerms`), and one query scans at most
`SCAN_BUDGET_CHARS` characters of text in all (counting chunks, snippets and highlighting); text
beyond the budget is shown escaped but unmarked.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from html import unescape

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
# Characters one query may scan for matches, in all its texts: 50 candidates of 8 full chunks
# take about 1/10 of it; a 5 MB document is cut off after 1 MB instead of costing seconds of
# Python per search (a 3.7 MB document cost 9.7 s, 182k stems, before this bound).
SCAN_BUDGET_CHARS = 1_000_000
# Distinct words whose stems stay cached between queries (a few MB at most).
STEM_CACHE_WORDS = 65_536


@dataclass
class QueryTerms:
    """The positive terms of one query, and what scanning texts for them has cost so far."""

    stems: set[str] = field(default_factory=set)
    cjk_words: list[str] = field(default_factory=list)
    scan_budget: int = SCAN_BUDGET_CHARS  # characters this query may still scan
    # Each surface form seen in a text -> whether it matches a stem (so each is stemmed once).
    forms: dict[str, bool] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return bool(self.stems or self.cjk_words)

    def matches(self, word: str) -> bool:
        """Return whether `word` (as it appears in the text) is one of the query's terms."""
        known = self.forms.get(word)
        if known is None:
            known = self.forms[word] = stem(word) in self.stems
        return known

    def take(self, text: str) -> str:
        """Return the part of `text` this query may still scan, and spend the budget on it."""
        allowed = text if len(text) <= self.scan_budget else text[: self.scan_budget]
        self.scan_budget -= len(allowed)
        return allowed


def stem(word: str) -> str:
    return _stem_lower(word.lower().replace("’", "'"))


@lru_cache(maxsize=STEM_CACHE_WORDS)
def _stem_lower(word: str) -> str:
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    return stemmer.stemWord(word)


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


def _cjk_spans(text: str, terms: QueryTerms) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for word in sorted(terms.cjk_words, key=len, reverse=True):
        start = text.find(word)
        while start != -1:
            spans.append((start, start + len(word)))
            start = text.find(word, start + len(word))
    return spans


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            continue
        merged.append((start, end))
    return merged


def find_matches(text: str, terms: QueryTerms) -> list[tuple[int, int]]:
    """Return sorted, non-overlapping (start, end) spans of `text` that match a query term.

    Only the part of `text` within the query's scan budget is searched (and the budget spent).
    """
    if not terms:
        return []
    text = terms.take(text)
    spans: list[tuple[int, int]] = []
    if terms.stems:
        spans.extend(match.span() for match in WORD.finditer(text) if terms.matches(match.group()))
    spans.extend(_cjk_spans(text, terms))
    return _merged(spans)


def count_matches(text: str, terms: QueryTerms) -> int:
    """Return len(find_matches(text, terms)), counting each distinct word once (cheaper)."""
    if not terms:
        return 0
    text = terms.take(text)
    count = 0
    if terms.stems:
        count = sum(n for word, n in Counter(WORD.findall(text)).items() if terms.matches(word))
    if terms.cjk_words:
        # English words and Chinese runs never overlap; Chinese words may overlap each other.
        count += len(_merged(_cjk_spans(text, terms)))
    return count


def highlight(text: str, terms: QueryTerms) -> SafeString:
    """Return `text` HTML-escaped with every match wrapped in <mark>."""
    return _marked_html(text, find_matches(text, terms))


def _marked_html(text: str, matches: list[tuple[int, int]]) -> SafeString:
    pieces: list[str] = []
    position = 0
    for start, end in matches:
        pieces.append(escape(text[position:start]))
        pieces.append(f"<mark>{escape(text[start:end])}</mark>")
        position = end
    pieces.append(escape(text[position:]))
    return mark_safe("".join(pieces))  # noqa: S308 - every piece above is escaped


def snippet(text: str, terms: QueryTerms, width: int | None = None) -> SafeString:
    """Return the `width`-character window of `text` with the most matches, highlighted
    (snippet_parts gives its plain text and match offsets back)."""
    text = " ".join(text.split())
    if width is None:
        cjk = sum(len(run) for run in CJK_RUN.findall(text[:1000]))
        width = SNIPPET_CHARS_CJK if cjk * 2 > min(len(text), 1000) else SNIPPET_CHARS
    if len(text) <= width:
        return highlight(text, terms)
    best_start = _best_window(find_matches(text, terms), width)
    # Begin at a word boundary when the window starts inside English text.
    if best_start > 0:
        space = text.find(" ", best_start, best_start + 20)
        if space != -1 and not CJK_RUN.match(text[best_start : best_start + 1]):
            best_start = space + 1
    window = text[best_start : best_start + width]
    prefix = "… " if best_start > 0 else ""
    suffix = " …" if best_start + width < len(text) else ""
    return mark_safe(escape(prefix) + highlight(window, terms) + escape(suffix))  # noqa: S308


# The only markup in what highlight() and snippet() write: everything else is escaped text.
MARK_TAG = re.compile(r"</?mark>")


def snippet_parts(html: str) -> tuple[str, list[tuple[int, int]]]:
    """Return the plain text of a snippet written by highlight() or snippet() and the [start, end)
    offsets of its <mark>ed matches in that text, in code points (Python string indexes)."""
    text: list[str] = []
    marks: list[tuple[int, int]] = []
    length = 0
    inside = False
    for i, piece in enumerate(MARK_TAG.split(html)):
        if i:
            inside = not inside
        plain = unescape(piece)
        if inside:
            marks.append((length, length + len(plain)))
        text.append(plain)
        length += len(plain)
    return "".join(text), marks


def _best_window(matches: list[tuple[int, int]], width: int) -> int:
    """Return the start of the window holding the most whole matches (one pass over them).

    A window starts a quarter width before a match; of equal windows the first wins. Spans are
    sorted and do not overlap, so both their starts and their ends grow: the matches ending within
    a window and those starting before it are two prefixes, each found by a pointer that only
    moves forward.
    """
    best_start, best_count = 0, -1
    ending = starting = 0
    for start, _ in matches:
        window_start = max(0, start - width // 4)
        while ending < len(matches) and matches[ending][1] <= window_start + width:
            ending += 1
        while starting < len(matches) and matches[starting][0] < window_start:
            starting += 1
        count = max(0, ending - starting)
        if count > best_count:
            best_start, best_count = window_start, count
    return best_start
