"""Work stays bounded for very common terms, and the top k is still exactly BM25's."""

from __future__ import annotations

import json
import uuid

import pytest

from documents.services import DocumentInput, documents_import
from search.backends import find_candidates, get_backend
from search.query import parse

pytestmark = pytest.mark.django_db

POOL = 10  # a common term's postings read at most (SEARCH_COMMON_TERM_POOL), tiny for the test


@pytest.fixture
def collection() -> str:
    """200 documents with a common word at varied counts and lengths, and a rare word in 3."""
    name = f"bounded-{uuid.uuid4().hex[:8]}"
    items = []
    for i in range(200):
        words = " ".join(["filler"] * (5 + i % 17) + ["common"] * (1 + i % 5))
        rare = " rare" if i in (7, 70, 170) else ""
        items.append(DocumentInput(title=f"Doc {i}", body=f"{words}{rare} number{i}."))
    documents_import(items=items, collection=name)
    return name


def ranked(query: str, collection: str, k: int = 5) -> tuple[list[tuple[int, float]], bool]:
    found = find_candidates(query, k=k, collection=collection)
    return [(c.document_id, round(c.score, 6)) for c in found.candidates], found.exact


def test_it_reads_only_a_pool_of_a_common_terms_postings_and_stays_exact(collection, settings):
    settings.SEARCH_EXHAUSTIVE_POSTINGS = 50
    settings.SEARCH_COMMON_TERM_POOL = POOL
    bounded, exact = ranked("common", collection)
    read = postings_read("common", collection, settings)

    settings.SEARCH_EXHAUSTIVE_POSTINGS = 1_000_000
    exhaustive, _ = ranked("common", collection)

    assert exact
    assert bounded == exhaustive
    # The pool (POOL postings) and its bound (the POOL-th impact), not the term's 200.
    assert 0 < read <= 2 * POOL


def test_it_scores_rare_terms_whole_and_pools_the_common_one(collection, settings):
    settings.SEARCH_EXHAUSTIVE_POSTINGS = 50
    settings.SEARCH_COMMON_TERM_POOL = POOL
    bounded, _ = ranked("common rare", collection, k=3)
    settings.SEARCH_EXHAUSTIVE_POSTINGS = 1_000_000
    exhaustive, _ = ranked("common rare", collection, k=3)
    # The three documents with the rare word come first, scored over both words.
    assert bounded == exhaustive
    assert len(bounded) == 3


def test_it_never_builds_a_document_vector_at_query_time(collection):
    plan = get_backend().explain(parse("common rare"), k=5, collection=collection)
    assert "to_tsvector" not in plan
    assert "documents_document" in plan or "Index" in plan


def postings_read(query: str, collection: str, settings) -> int:
    """Return how many postings the candidate statement read from the term-impact index (EXPLAIN)."""
    from django.db import connection

    plan = get_backend()._plan(parse(query), k=5, collection=collection)
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + plan.sql, {**plan.params, "pool_size": settings.SEARCH_COMMON_TERM_POOL}
        )
        tree = cursor.fetchone()[0]
    tree = json.loads(tree) if isinstance(tree, str) else tree
    return _impact_rows(tree[0]["Plan"])


def _impact_rows(node: dict) -> int:
    rows = 0
    if node.get("Index Name") == "bm25_posting_term_impact":
        rows += node["Actual Rows"] * node["Actual Loops"]
    return rows + sum(_impact_rows(child) for child in node.get("Plans", []))


def test_it_finds_a_phrase_of_common_words_outside_their_best_postings(settings):
    collection = f"bounded-{uuid.uuid4().hex[:8]}"
    items = [DocumentInput(title=f"Apart {i}", body=f"alpha {'x ' * 3}beta alpha beta {i}") for i in range(60)]
    # The phrase, once each, in long documents: their impacts for both words are among the lowest.
    items += [
        DocumentInput(title=f"Long {i}", body=f"{'filler words here ' * 60}beta then alpha beta once {i}")
        for i in range(3)
    ]
    # In the short "Apart" documents the words are adjacent too, but in the other order.
    items = [DocumentInput(title=i.title, body=i.body.replace("alpha beta", "beta alpha")) for i in items[:60]] + items[
        60:
    ]
    documents_import(items=items, collection=collection)
    settings.SEARCH_EXHAUSTIVE_POSTINGS = 50
    settings.SEARCH_COMMON_TERM_POOL = POOL

    found = find_candidates('"alpha beta"', k=5, collection=collection)

    assert sorted(c.title for c in found.candidates) == ["Long 0", "Long 1", "Long 2"]
    assert found.notices == []  # found as a phrase, not relaxed to its words
