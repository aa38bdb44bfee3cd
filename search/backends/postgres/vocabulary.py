"""Vocabulary: the library's own words near a query's, read from the BM25 term statistics.

"Did you mean" corrections come from here (search.suggest holds the engine-neutral arithmetic).
No pg_trgm or fuzzystrmatch: the embedded PostgreSQL has neither.
"""

from __future__ import annotations

import logging
import re

from django.db import DatabaseError

from documents.textsearch import CJK_RUN, has_cjk, segment_words
from search import suggest
from search.backends.postgres import bounds
from search.backends.postgres.planning import ResolvedClause, fetch, resolve
from search.query import Clause, ParsedQuery

logger = logging.getLogger(__name__)

# The vocabulary near one word. English lexemes are stems, so the neighbours are stems of similar
# length sharing the first letter; Chinese words are themselves, so neighbours have the same
# length and share the first or the last character.
NEAR_STEMS_SQL = """
SELECT t.lexeme, t.df FROM search_bm25_term t JOIN search_bm25_collection c ON c.id = t.collection_id
WHERE c.name = %(collection)s AND t.df > 0 AND t.lexeme >= %(low)s AND t.lexeme < %(high)s
  AND length(t.lexeme) BETWEEN %(shortest)s AND %(longest)s
ORDER BY t.df DESC LIMIT %(limit)s
"""
NEAR_CJK_SQL = """
SELECT t.lexeme, t.df FROM search_bm25_term t JOIN search_bm25_collection c ON c.id = t.collection_id
WHERE c.name = %(collection)s AND t.df > 0 AND length(t.lexeme) = %(length)s
  AND (left(t.lexeme, 1) = %(first)s OR right(t.lexeme, 1) = %(last)s)
ORDER BY t.df DESC LIMIT %(limit)s
"""
# The words of one document containing a stem: where the stem's spelling in the library is found.
SURFACE_SQL = """
SELECT d.title || ' ' || left(d.body, 20000) FROM search_bm25_posting p
JOIN search_bm25_term t ON t.id = p.term_id
JOIN search_bm25_collection c ON c.id = t.collection_id
JOIN documents_document d ON d.id = p.document_id
WHERE c.name = %(collection)s AND t.lexeme = %(lexeme)s
ORDER BY p.impact DESC LIMIT 1
"""
ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")


def suggestion(query: ParsedQuery, *, collection: str) -> str | None:
    """Return the query with its unknown or rare words corrected from the library's vocabulary,
    or None when nothing is worth suggesting (SQL: a few statements per word, only for words
    the library lacks or barely has)."""
    words = query_words(query)
    if not words:
        return None
    try:
        resolution = resolve([Clause(text=word) for word in words], collection)
        corrections = {}
        for word, item in zip(words, resolution.clauses, strict=True):
            correction = _correct(word, item, collection)
            if correction:
                corrections[word] = correction
    except DatabaseError:
        logger.warning("no suggestion: the vocabulary could not be read")
        return None
    text = query.text
    for word, correction in corrections.items():
        if has_cjk(word):  # no spaces between Chinese words: replace the text itself
            text = text.replace(word, correction, 1)
        else:
            text = re.sub(rf"(?<![\w-]){re.escape(word)}(?!\w)", correction, text, count=1)
    return text if text != query.text else None


def query_words(query: ParsedQuery) -> list[str]:
    """Return the plain words of a query worth correcting: English words and Chinese words."""
    words: list[str] = []
    for clause in query.scored:
        if clause.phrase:
            continue
        words.extend(ENGLISH_WORD.findall(clause.text))
        for run in CJK_RUN.findall(clause.text):
            words.extend(word for word in segment_words(run) if len(word) >= 2)
    return list(dict.fromkeys(words))


def _correct(word: str, item: ResolvedClause, collection: str) -> str | None:
    if len(item.lexemes) != 1:
        return None  # a stop word, or a word the index splits: nothing one edit away
    lexeme = item.lexemes[0]
    df = next(iter(item.terms.values()), 0)
    if has_cjk(word):
        return _correct_chinese(lexeme, df, collection)
    edits = suggest.max_edits(lexeme)
    params = {
        "collection": collection,
        "low": lexeme[0],
        "high": chr(ord(lexeme[0]) + 1),
        "shortest": len(lexeme) - edits,
        "longest": len(lexeme) + edits,
        "limit": bounds.NEAR_LIMIT,
    }
    rows = fetch(NEAR_STEMS_SQL, params)
    # Stems are compared first (cheap, one per vocabulary word); the few closest are then
    # spelled as the library spells them, and the spelling closest to what was typed wins.
    typed = word.lower()
    spelled = []
    for rank, stem in enumerate(suggest.corrections(lexeme, df, rows)):
        for form in spellings(stem, collection):
            distance = suggest.edit_distance(typed, form, limit=max(len(typed), len(form)))
            spelled.append((distance, rank, form))
    return min(spelled)[2] if spelled else None


def _correct_chinese(lexeme: str, df: int, collection: str) -> str | None:
    params = {"collection": collection, "length": len(lexeme), "first": lexeme[0], "last": lexeme[-1]}
    rows = fetch(NEAR_CJK_SQL, {**params, "limit": bounds.NEAR_LIMIT})
    found = suggest.corrections(lexeme, df, rows, best=1)
    return found[0] if found else None


def spellings(stem: str, collection: str) -> set[str]:
    """Return how the library spells words with this stem (one statement: one document's words)."""
    from search.highlight import stem as english_stem

    rows = fetch(SURFACE_SQL, {"collection": collection, "lexeme": stem})
    if not rows:
        return set()
    return {word.lower() for word in ENGLISH_WORD.findall(rows[0][0]) if english_stem(word) == stem}
