"""A fallback's notice tells what happened: a worker that is up but slow (a timeout), or no worker at all."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from search import worker_client
from search.services import search_run
from tests.support.processes import start_worker
from tests.support.session import child_env, start_own_worker, wait_for_worker

pytestmark = [pytest.mark.django_db, pytest.mark.faults]

# Far too short for any worker: the search must time out.
TINY_BUDGET_SECONDS = 0.001
# How long the test waits for a killed worker's heartbeat to go stale (it is written every 2 s).
STALE_WAIT_SECONDS = 60.0
# A worker that gathers searches for far longer than any budget: nothing is scored in time.
GATHER_FOREVER_MS = 600_000
BUDGET_SECONDS = 2.0


@pytest.fixture(autouse=True)
def _no_rerank_cache(settings):
    """Every search here must reach the worker (or fail to): no scores from the rerank cache."""
    settings.RERANK_CACHE_SECONDS = 0


def test_it_tells_a_slow_worker_from_a_missing_one(settings, own_queue, tiny_model_dir: Path, artifacts_dir: Path):
    worker = start_own_worker(own_queue, str(tiny_model_dir), artifacts_dir)
    try:
        assert wait_for_worker(worker).get("ready")
        settings.RERANK_TIMEOUT = TINY_BUDGET_SECONDS
        slow = search_run(query="python snake diet")
        assert slow.rerank_status == "timeout"
        assert any("it is up but slow" in notice for notice in slow.notices), slow.notices
    finally:
        worker.kill()
    deadline = time.monotonic() + STALE_WAIT_SECONDS
    while worker_client.worker_heartbeat() is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    settings.RERANK_TIMEOUT = 1.0
    waiting = worker_client.queue_length()
    gone = search_run(query="python snake diet")
    # A worker known to be gone (its heartbeat is stale) is neither sent the work nor waited for.
    assert gone.rerank_status == "unavailable"
    assert any("no rerank worker has reported in" in notice for notice in gone.notices), gone.notices
    assert worker_client.queue_length() == waiting, "no task was sent"
    assert gone.fulltext  # the full-text order still answers


def test_the_worker_answers_before_the_web_stops_waiting(
    client, settings, own_queue, tiny_model_dir: Path, artifacts_dir: Path
):
    worker = start_worker(
        child_env(),
        artifacts_dir / f"worker-{own_queue}.log",
        queue=own_queue,
        model=str(tiny_model_dir),
        extra_env={"RERANKER_FALLBACK_MODEL": "", "RERANKER_GATHER_MS": str(GATHER_FOREVER_MS)},
    )
    try:
        assert wait_for_worker(worker).get("ready")
        settings.RERANK_TIMEOUT = BUDGET_SECONDS
        page = search_run(query="python snake diet", k=3)
        documents = {"query": "python snake diet", "documents": ["Pythons eat rodents.", "Apples are fruit."]}
        rerank = client.post("/api/v1/rerank", documents, content_type="application/json")
    finally:
        worker.stop()

    # The worker's own answer arrived while the web still waited: its words, not the web's guess
    # ("up but slow") after it stopped waiting.
    said = "the rerank deadline passed before the model reached this search"
    assert page.rerank_status == "timeout"
    assert any(said in notice for notice in page.notices), page.notices
    assert page.fulltext
    assert rerank.status_code == 504, rerank.content
    assert said in rerank.json()["error"]
