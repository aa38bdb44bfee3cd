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


def test_filling_a_pooled_documents_weights_reads_only_that_documents_postings(collection, settings):
    """The lookups of a common term's weight in the rare term's documents are primary-key probes,
    not a read of the common term's postings filtered by document."""
    from django.db import connection

    from search.backends.postgres import POOL_FILL

    settings.SEARCH_EXHAUSTIVE_POSTINGS = 50
    settings.SEARCH_COMMON_TERM_POOL = POOL
    plan = get_backend()._plan(parse("common rare"), k=3, collection=collection)
    assert plan.params["exhaustive"] == [True, False]  # rare read whole, common pooled
    with connection.cursor() as cursor:
        rare_term = plan.params["term_ids"][0]
        cursor.execute("SELECT DISTINCT p.document_id FROM search_bm25_posting p WHERE p.term_id = %s", [rare_term])
        rare_documents = [row[0] for row in cursor.fetchall()]
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + POOL_FILL, {**plan.params, "ids": rare_documents})
        tree = cursor.fetchone()[0]
    tree = json.loads(tree) if isinstance(tree, str) else tree
    assert len(rare_documents) == 3
    # Each of the 3 documents has both words: 6 postings, and nothing else read or filtered out.
    assert _posting_rows(tree[0]["Plan"]) == 6


def _posting_rows(node: dict) -> int:
    """Rows a plan read from search_bm25_posting's indexes, those its filters then removed included."""
    rows = 0
    if node.get("Index Name", "").startswith(("bm25_posting", "search_bm25_posting")):
        rows += (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
    return rows + sum(_posting_rows(child) for child in node.get("Plans", []))


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
    # Budgets small enough that both words are common and pooled, not scored exhaustively.
    settings.SEARCH_EXHAUSTIVE_POSTINGS = 5
    settings.SEARCH_COMMON_TERM_POOL = POOL

    found = find_candidates('"alpha beta"', k=5, collection=collection)
    assert not get_backend()._plan(parse('"alpha beta"'), k=5, collection=collection).exhaustive

    assert sorted(c.title for c in found.candidates) == ["Long 0", "Long 1", "Long 2"]
    assert found.notices == []  # found as a phrase, not relaxed to its words


def test_pools_are_not_trusted_when_the_settings_changed_since_the_impacts(collection, settings):
    """A common term's pool follows the postings' impacts, computed with the parameters of the last
    reindex; with other SEARCH_BM25_* settings the pool could leave out a document that now
    scores higher, so every posting is scored instead."""
    settings.SEARCH_EXHAUSTIVE_POSTINGS = 50
    settings.SEARCH_COMMON_TERM_POOL = POOL
    assert not get_backend()._plan(parse("common"), k=5, collection=collection).exhaustive
    settings.SEARCH_BM25_B = 0.1  # the collection's impacts were computed with 0.8
    assert get_backend()._plan(parse("common"), k=5, collection=collection).exhaustive
    bounded, exact = ranked("common", collection)
    settings.SEARCH_EXHAUSTIVE_POSTINGS = 1_000_000
    assert exact
    assert bounded == ranked("common", collection)[0]
