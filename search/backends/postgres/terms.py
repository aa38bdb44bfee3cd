"""The query's words as the collection's terms: lexemes, term ids, document frequencies, and the
collection's statistics, all read in one statement (TERMS_SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from documents.textsearch import TS_CONFIG, segment_for_index
from search.backends.postgres.statements import TERMS_SQL
from search.query import Clause


@dataclass(frozen=True)
class Expansion:
    """A library word a query word also matches (search.backends.postgres.vocabulary.expand)."""

    term_id: int
    lexeme: str
    df: int
    kind: str  # vocabulary.TYPO, PREFIX or CHINESE
    spelled: str  # how a notice names it: the library's spelling


@dataclass
class ResolvedClause:
    """A clause of the query with what the index knows of it."""

    clause: Clause
    lexemes: list[str] = field(default_factory=list)
    terms: dict[int, int] = field(default_factory=dict)  # term id -> df
    packed: set[int] = field(default_factory=set)  # term ids with a pack (search.models.Bm25Pack)
    expansions: dict[int, Expansion] = field(default_factory=dict)  # term id -> what it stands for


@dataclass
class Statistics:
    """The collection's BM25 statistics and the state of its packs."""

    documents: int = 0
    avg_title: float = 0.0
    avg_body: float = 0.0
    collection_id: int | None = None
    changes: int = 0  # documents written since the packs were taken (counted up to the limit + 1)
    impacts_current: bool = True  # the postings' impacts were computed with the SEARCH_BM25_* settings


@dataclass
class Resolution:
    """Each clause's lexemes and terms, in the order asked, and the collection's statistics."""

    clauses: list[ResolvedClause]
    statistics: Statistics


def fetch(sql: str, params: dict) -> list[tuple]:
    """Return the rows of one statement on the Django connection."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def resolve(clauses: list[Clause], collection: str) -> Resolution:
    """Return each clause's lexemes and terms, and the collection's statistics (one statement)."""
    resolved = [ResolvedClause(clause=clause) for clause in clauses]
    stats = Statistics()
    params = {
        "texts": [segment_for_index(clause.text) for clause in clauses],
        "config": TS_CONFIG,
        "collection": collection,
        "changes": settings.SEARCH_PACK_CHANGES,
        "k1": settings.SEARCH_BM25_K1,
        "b": settings.SEARCH_BM25_B,
        "title_weight": settings.SEARCH_BM25_TITLE_WEIGHT,
    }
    for row in fetch(TERMS_SQL, params):
        position, lexeme, term_id, df, documents, title_tokens, body_tokens, collection_id, changes = row[:9]
        impacts_current, is_packed = row[9:]
        item = resolved[position - 1]
        item.lexemes.append(lexeme)
        if term_id is not None:
            item.terms[term_id] = df
            if is_packed:
                item.packed.add(term_id)
        if documents:
            averages = title_tokens / documents, body_tokens / documents
            stats = Statistics(documents, *averages, collection_id, changes, impacts_current)
    return Resolution(resolved, stats)
