"""Our BM25 is Lucene's BM25: on the same tokens, with BM25F's two fields made one (title weight 1,
no length normalisation, where BM25F and one-field BM25 coincide), every score equals bm25s's.

bm25s (the evaluation's baseline) leaves out Lucene's constant factor k1 + 1; ours keeps it.
Tokens: our own lexemes, read from each document's stored tsvector, so that the tokenizers
cannot differ; what is compared is the arithmetic (idf, saturation, sums over query terms).
"""

from __future__ import annotations

import random
import uuid

import pytest
from django.db import connection

from documents.services import DocumentInput, documents_import
from search.backends import find_candidates

pytestmark = pytest.mark.django_db

bm25s = pytest.importorskip("bm25s", reason="bm25s is installed with requirements.txt (the evaluation baseline)")

WORDS = ["apple", "orchard", "river", "stone", "lantern", "meadow", "cloud", "harvest", "winter", "market", "bread"]
QUERIES = ["apple", "apple river", "stone lantern meadow", "bread market winter", "orchard harvest cloud"]
LEXEMES_SQL = """
SELECT d.id, v.lexeme, cardinality(v.positions)
FROM documents_document d CROSS JOIN LATERAL unnest(d.search_vector) v
WHERE d.collection = %s ORDER BY d.id, v.lexeme
"""


@pytest.fixture
def library(settings) -> str:
    settings.SEARCH_BM25_K1 = 1.2
    settings.SEARCH_BM25_B = 0.0
    settings.SEARCH_BM25_TITLE_WEIGHT = 1.0
    rng = random.Random(11)
    name = f"reference-{uuid.uuid4().hex[:8]}"
    items = [
        DocumentInput(
            title=" ".join(rng.choices(WORDS, k=rng.randint(1, 4))),
            body=" ".join(rng.choices(WORDS, weights=range(len(WORDS), 0, -1), k=rng.randint(5, 80))),
        )
        for _ in range(150)
    ]
    documents_import(items=items, collection=name)
    return name


def reference_scores(collection: str, query: str) -> dict[int, float]:
    """bm25s over our lexemes (each repeated by its count), scores times k1 + 1."""
    tokens: dict[int, list[str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(LEXEMES_SQL, [collection])
        for document_id, lexeme, count in cursor.fetchall():
            tokens.setdefault(document_id, []).extend([lexeme] * count)
        cursor.execute("SELECT array_agg(lexeme) FROM unnest(to_tsvector('english', %s))", [query])
        query_tokens = cursor.fetchone()[0]
    ids = sorted(tokens)
    retriever = bm25s.BM25(k1=1.2, b=0.0, method="lucene")
    retriever.index([tokens[pk] for pk in ids], show_progress=False)
    scores = retriever.get_scores(query_tokens)
    return {pk: 2.2 * float(score) for pk, score in zip(ids, scores, strict=True) if score > 0}


@pytest.mark.parametrize("query", QUERIES)
def test_every_score_equals_lucene_bm25_on_the_same_tokens(library, query):
    expected = reference_scores(library, query)
    found = {c.document_id: c.score for c in find_candidates(query, k=200, collection=library).candidates}
    assert len(expected) > 20  # the query's words are in many of the documents
    assert found.keys() == expected.keys()
    for pk, score in expected.items():
        assert found[pk] == pytest.approx(score, rel=1e-6), pk


def test_the_top_ten_is_lucenes_top_ten(library):
    for query in QUERIES:
        expected = reference_scores(library, query)
        best = sorted(expected, key=lambda pk: (-expected[pk], pk))[:10]
        found = [c.document_id for c in find_candidates(query, k=10, collection=library).candidates]
        assert found == best, query
