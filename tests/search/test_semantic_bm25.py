"""A document found by meaning alone keeps its real BM25 score for the query (issue 22).

It may hold some of the query's words and still rank past the BM25 candidates the pool reads;
the bi-encoder's blend (0.3 × minmax(BM25) + 0.7 × minmax(cosine)) must then see that score, not
0. One that holds none of the query's words scores 0. The full-text order stays BM25's alone (such
a document has no full-text rank).

No worker runs here: the nearest documents and the reranker's reply are given, so the test reads
only what search_run does with them, against the real PostgreSQL index.
"""

from __future__ import annotations

import uuid

import pytest

from documents.models import Document
from documents.services import DocumentInput, documents_import
from search import semantic, services
from search.backends import find_candidates, score_documents
from worker.protocol import ModelInfo, WorkerReply

pytestmark = pytest.mark.django_db

QUERY = "solar wind"
LIBRARY = {
    "a": ("Solar wind", "The solar wind is a stream of plasma; solar wind speed varies."),
    "b": ("Solar wind probes", "Spacecraft measure the solar wind near the sun."),
    "e": ("Wind and solar power", "Solar farms and wind farms share the grid."),
    "f": ("Solar wind storms", "Storms in the solar wind disturb satellites."),
    # One query word, once: past the first four BM25 candidates.
    "c": ("Panel efficiency", "Solar panels convert light into electricity."),
    # None of the query's words.
    "d": ("Heliosphere outflow", "Charged particles stream outward from the corona into space."),
}
BI_ENCODER = ModelInfo(
    model="test-bi-encoder",
    kind="bi-encoder",
    device="cpu",
    dtype="float32",
    max_length=512,
    load_seconds=0.0,
    requested="test-bi-encoder",
)


@pytest.fixture
def library() -> tuple[str, dict[str, int]]:
    name = f"semantic-bm25-{uuid.uuid4().hex[:8]}"
    documents_import(items=[DocumentInput(title=t, body=b) for t, b in LIBRARY.values()], collection=name)
    titles = {title: key for key, (title, _) in LIBRARY.items()}
    return name, {
        titles[title]: pk for pk, title in Document.objects.filter(collection=name).values_list("pk", "title")
    }


def test_the_backend_scores_given_documents_as_its_candidates_at_any_depth(library):
    name, ids = library
    found = {c.document_id: c.score for c in find_candidates(QUERY, k=50, collection=name).candidates}
    assert ids["c"] in found and ids["d"] not in found
    scores = score_documents(QUERY, list(ids.values()), collection=name)
    assert scores == found  # bit for bit; the document without the query's words is left out
    # An exclusion the document fails: it does not match the query, so no score.
    assert ids["c"] not in score_documents("solar wind -panels", [ids["c"]], collection=name)
    assert score_documents("solar wind", [ids["c"]], collection=name, languages=["zh"]) == {}


def test_a_document_found_by_meaning_alone_keeps_its_bm25_score_in_the_blend(library, monkeypatch, settings):
    name, ids = library
    settings.SEARCH_SEMANTIC = True
    settings.RERANK_BI_ENCODER_BM25_WEIGHT = 0.3
    bm25 = {c.document_id: c.score for c in find_candidates(QUERY, k=50, collection=name).candidates}
    first_four = list(bm25)[:4]
    assert ids["c"] not in first_four and bm25[ids["c"]] > 0
    # The nearest documents by vector: c (one query word, past BM25's first four) and d (none).
    hits = semantic.SemanticHits(documents=[ids["c"], ids["d"]], cosine={ids["c"]: 0.8, ids["d"]: 0.8}, path="exact")

    def semantic_hits(outcome, embedding, started, **kwargs):
        outcome.semantic_status = "ok"
        return None, hits

    def rerank(query, groups, *, versions, **kwargs):
        # The same cosine for c and d, so only BM25 can order them; BM25's candidates lower.
        pks = [int(version.split(":")[0]) for version in versions]
        scores = [0.9 if pk in (ids["c"], ids["d"]) else 0.5 for pk in pks]
        return WorkerReply(status="ok", scores=scores, best=[0] * len(groups), model=BI_ENCODER)

    monkeypatch.setattr(services.worker_client, "send_embed_query", lambda query: object())
    monkeypatch.setattr(services, "_semantic_hits", semantic_hits)
    monkeypatch.setattr(services.worker_client, "rerank", rerank)
    outcome = services.search_run(query=QUERY, k=4, k_initial=4, collection=name, expand=False)
    assert outcome.is_reranked and outcome.semantic_status == "ok"
    # The full-text order is BM25's alone: neither document found by meaning is in it.
    assert [row.document_id for row in outcome.fulltext] == first_four
    rows = {row.document_id: row for row in outcome.reranked}
    assert ids["c"] in rows and ids["d"] in rows, "both found by meaning join the pool"
    c, d = rows[ids["c"]], rows[ids["d"]]
    assert c.found_by_meaning and d.found_by_meaning
    assert c.fulltext_rank is None and d.fulltext_rank is None
    assert c.fulltext_score == pytest.approx(round(bm25[ids["c"]], 4))
    assert d.fulltext_score == 0.0
    # Same cosine: c's BM25 puts it above d in the blend (before the fix both read BM25 = 0).
    assert c.model_score == d.model_score
    assert c.rerank_score > d.rerank_score
    pool_bm25 = {row.document_id: row.fulltext_score for row in outcome.reranked}
    expected = services.bm25_blend(
        pool_bm25, {row.document_id: row.model_score for row in outcome.reranked}, weight=0.3
    )
    assert {pk: row.rerank_score for pk, row in rows.items()} == pytest.approx(
        {pk: round(value, 4) for pk, value in expected.items()}, abs=1e-4
    )
