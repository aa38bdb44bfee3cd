"""What the packed-postings tests share (tests/search/test_bm25_packs.py, test_bm25_repack.py): the
common words of their collections, a query's top k as the site ranks it and as SQL alone scores
it over every posting, whether a query's plan reads packs, and how many changes a collection logged."""

from __future__ import annotations

from django.db import connection

from search.backends import find_candidates, get_backend
from search.query import parse

COMMON = ["apple", "river", "stone", "lantern"]


def ranked(query: str, collection: str, k: int = 10, languages=None) -> list[tuple[int, float]]:
    found = find_candidates(query, k=k, collection=collection, languages=languages)
    assert found.exact
    return [(c.document_id, c.score) for c in found.candidates]


def exhaustive(query: str, collection: str, settings, k: int = 10, languages=None) -> list[tuple[int, float]]:
    """The same query scored over every posting by SQL alone (no pools, no packs)."""
    saved = settings.SEARCH_EXHAUSTIVE_POSTINGS, settings.SEARCH_COMMON_TERM_POOL
    settings.SEARCH_EXHAUSTIVE_POSTINGS = settings.SEARCH_COMMON_TERM_POOL = 10**9
    try:
        assert get_backend()._plan(parse(query), k=k, collection=collection).packed is None
        # Whichever plan PostgreSQL picks (it follows what else the database holds), the scores
        # are the same to the bit: a hashed aggregate meets each document's terms in the order
        # the terms are read, a sorted one in the order of an unstable sort.
        results = []
        for hashed in ("on", "off"):
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('enable_hashagg', %s, true)", [hashed])
            results.append(ranked(query, collection, k, languages))
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('enable_hashagg', 'on', true)")
        assert results[0] == results[1], "the exhaustive scores depend on the aggregate's plan"
        return results[0]
    finally:
        settings.SEARCH_EXHAUSTIVE_POSTINGS, settings.SEARCH_COMMON_TERM_POOL = saved


def uses_packs(query: str, collection: str) -> bool:
    return get_backend()._plan(parse(query), k=10, collection=collection).packed is not None


def changes(collection: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM search_bm25_change x JOIN search_bm25_collection c ON c.id = x.collection_id "
            "WHERE c.name = %s",
            [collection],
        )
        return cursor.fetchone()[0]
