"""A worker known to be dead costs nothing (issue 25). With the queue's heartbeat stale (here: a
worker stopped by SIGSTOP, as a frozen process or machine would be) a search answers at once in the
full-text order with the notice, and the rerank API answers 503 at once: neither sends the worker
a task, however generous the budget. Running again, the worker reranks again. The same holds while
the heartbeat says the worker is still loading its model.

The worker is this test's own, on its own queue, stopped and continued by its process group id.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from search import worker_client
from tests.support.own_services import wait_for
from tests.support.session import start_own_worker, wait_for_worker

pytestmark = [pytest.mark.django_db, pytest.mark.faults]

QUERY = "python snake diet"
# A budget a search waiting for the stopped worker would spend in full (and then answer "timeout").
GENEROUS_SECONDS = 30.0
# How long the test waits for the heartbeat to go stale or fresh (it is written every 2 s).
HEARTBEAT_WAIT_SECONDS = 60.0


@pytest.fixture(autouse=True)
def _no_rerank_cache(settings):
    """Every search here must reach the worker (or decide not to): no scores from the rerank cache."""
    settings.RERANK_CACHE_SECONDS = 0


def test_it_sends_nothing_to_a_stopped_worker_and_answers_at_once(
    client, settings, own_queue, tiny_model_dir: Path, artifacts_dir: Path
):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    worker = start_own_worker(own_queue, str(tiny_model_dir), artifacts_dir)
    try:
        assert wait_for_worker(worker).get("ready")
        os.killpg(worker.pid, signal.SIGSTOP)
        try:
            wait_for(
                lambda: worker_client.worker_heartbeat() is None,
                timeout=HEARTBEAT_WAIT_SECONDS,
                interval=0.5,
                what="the stopped worker's heartbeat going stale",
            )
            waiting = worker_client.queue_length()
            page = client.get("/search", {"q": QUERY})
            api = client.get("/api/v1/search", {"q": QUERY})
            documents = {"query": QUERY, "documents": ["Pythons eat rodents."]}
            rerank = client.post("/api/v1/rerank", documents, content_type="application/json")
            queued = worker_client.queue_length()
        finally:
            os.killpg(worker.pid, signal.SIGCONT)

        assert queued == waiting, "a task was sent to a worker known to be gone"
        assert page.status_code == 200
        outcome = page.context["outcome"]
        assert outcome.rerank_status == "unavailable" and outcome.fulltext and not outcome.reranked
        assert any("no rerank worker has reported in" in notice for notice in outcome.notices), outcome.notices
        assert "Full-text order" in page.content.decode()
        body = api.json()
        assert body["rerank_status"] == "unavailable" and body["reranked_applied"] is False
        assert "no rerank worker has reported in" in body["notice"]
        assert body["timings"]["model_ms"] is None  # the worker never saw it
        assert rerank.status_code == 503, rerank.content
        assert rerank.json()["status"] == "unavailable"
        assert "no rerank worker has reported in" in rerank.json()["error"]

        # Running again: its next heartbeat is fresh, and searches are reranked again.
        wait_for(
            lambda: worker_client.worker_heartbeat() is not None,
            timeout=HEARTBEAT_WAIT_SECONDS,
            interval=0.5,
            what="the continued worker's heartbeat",
        )
        again = client.get("/api/v1/search", {"q": QUERY, "k_initial": 3}).json()
        assert again["reranked_applied"] is True, again["notice"]
    finally:
        worker.stop()


def test_it_sends_nothing_to_a_worker_still_loading_its_model(
    client, settings, own_queue, tiny_model_dir: Path, artifacts_dir: Path
):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    worker = start_own_worker(own_queue, str(tiny_model_dir), artifacts_dir)
    try:
        # Its first heartbeat is written before torch and the model load: seconds, even on a fast
        # machine, against the milliseconds between this read and the search's own.
        wait_for(
            lambda: (beat := worker_client.worker_heartbeat()) is not None and beat.loading,
            timeout=HEARTBEAT_WAIT_SECONDS,
            interval=0.02,
            what="the starting worker's heartbeat saying it loads its model",
        )
        page = client.get("/search", {"q": QUERY})

        # Sent a task, the search would have waited for the model and been reranked.
        outcome = page.context["outcome"]
        assert outcome.rerank_status == "unavailable" and outcome.fulltext
        assert any("still loading its model" in notice for notice in outcome.notices), outcome.notices
    finally:
        worker.stop()
