"""Full-text ranking stays bounded for very common terms: only a capped pool of matches is ranked."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from documents.services import DocumentInput, documents_import
from search import fulltext

pytestmark = pytest.mark.django_db


@pytest.fixture
def word() -> str:
    return f"zq{uuid.uuid4().hex[:10]}"


def load(collection: str, items: list[tuple[str, str]]) -> None:
    documents_import(items=[DocumentInput(title=t, body=b) for t, b in items], collection=collection)


def test_it_still_ranks_documents_matching_all_terms_first(settings, word):
    settings.SEARCH_RANK_CAP = 10
    collection = f"cap-{word}"
    # Forty documents with only the common word, inserted first (the pool takes rows in no
    # particular order), then three with both words.
    common = [(f"Common {i}", f"{word}common appears here, {word}common again, note {i}.") for i in range(40)]
    both = [(f"Both {i}", f"{word}common together with {word}rare in text {i}.") for i in range(3)]
    load(collection, common + both)
    found = fulltext.candidates(f"{word}common {word}rare", k_initial=8, collection=collection).candidates
    assert len(found) == 8
    assert [c.all_terms for c in found[:3]] == [True, True, True]
    assert {c.title for c in found[:3]} == {"Both 0", "Both 1", "Both 2"}
    assert not any(c.all_terms for c in found[3:])


def test_it_ranks_at_most_the_cap_for_a_common_term(settings, word):
    settings.SEARCH_RANK_CAP = 12
    collection = f"cap-{word}"
    load(collection, [(f"Doc {i}", f"{word} shows up in document {i}.") for i in range(30)])
    found = fulltext.candidates(word, k_initial=5, collection=collection).candidates
    assert len(found) == 5
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + fulltext.CANDIDATES_SQL,
            {"config": "english", "query": word, "collection": collection, "limit": 5, "cap": 12},
        )
        plan = cursor.fetchone()[0][0]["Plan"]
    ranked = _rows_into_sort(plan)
    assert ranked is not None and ranked <= 12


def test_it_never_builds_a_vector_at_query_time():
    assert "to_tsvector" not in fulltext.CANDIDATES_SQL
    assert "search_vector" in fulltext.CANDIDATES_SQL


def _rows_into_sort(plan: dict) -> int | None:
    """Return the rows that reached the ranking sort in an EXPLAIN ANALYZE plan."""
    if plan.get("Node Type") == "Sort":
        return sum(child["Actual Rows"] for child in plan.get("Plans", []))
    for child in plan.get("Plans", []):
        found = _rows_into_sort(child)
        if found is not None:
            return found
    return None
