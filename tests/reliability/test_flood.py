"""A flood of searches bigger than the worker can take: its bounded queue turns the excess away at
once with a "busy" notice, so every search answers within its budget, none waits without limit.

The site and a worker run as real processes; the worker's queue is bounded by
RERANKER_MAX_QUEUED_PAIRS (small here, so that a flood of a couple of dozen searches exceeds it).
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from searchsite.celery import app
from tests.support.own_services import Reply, http
from tests.support.processes import ROOT, start_site, start_worker
from tests.support.session import child_env, wait_for_worker

pytestmark = pytest.mark.faults

# Searches sent at once: more than the worker's 16 task threads, far more than its queue holds.
CONCURRENT_SEARCHES = 24
# The web process's rerank budget (seconds), and what a busy machine may add to it.
BUDGET_SECONDS = 8.0
MARGIN_SECONDS = 4.0
# Pairs the worker's queue holds: about one search of 3 candidates x up to 8 chunks.
MAX_QUEUED_PAIRS = "30"
# The idle batching thread waits this long for searches sent together: the flood's searches meet
# in the queue instead of trickling through one by one.
GATHER_MS = "1000"
K_INITIAL = 3


def flood_queries() -> list[str]:
    lines = (ROOT / "tests" / "data" / "sample_eval" / "queries.jsonl").read_text().splitlines()
    english = [json.loads(line)["text"] for line in lines if '"language": "en"' in line]
    return english[:CONCURRENT_SEARCHES]


@pytest.fixture
def flood_stack(tiny_model_dir: Path, artifacts_dir: Path, django_db_setup):
    queue = f"rerank-flood-{uuid.uuid4().hex[:8]}"
    env = child_env(
        RERANK_QUEUE=queue,
        RERANK_TIMEOUT=str(BUDGET_SECONDS),
        RERANK_CACHE_SECONDS="0",
        SEARCH_ANON_THROTTLE="100000/min",
        SEARCH_PAGE_ANON_THROTTLE="100000/min",
    )
    worker = start_worker(
        env,
        artifacts_dir / f"worker-{queue}.log",
        queue=queue,
        model=str(tiny_model_dir),
        extra_env={
            "RERANKER_FALLBACK_MODEL": "",
            "RERANKER_MAX_QUEUED_PAIRS": MAX_QUEUED_PAIRS,
            "RERANKER_GATHER_MS": GATHER_MS,
        },
    )
    site, base = start_site(env, artifacts_dir / f"web-{queue}.log")
    try:
        from django.test import override_settings

        with override_settings(RERANK_QUEUE=queue):
            status = wait_for_worker(worker)
        assert status.get("ready"), status
        yield {"base": base, "worker": worker}
    finally:
        site.stop()
        worker.stop()
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)


def search(base: str, query: str) -> Reply:
    return http(f"{base}/api/v1/search?{urllib.parse.urlencode({'q': query, 'k_initial': K_INITIAL})}")


def test_it_turns_a_flood_away_as_busy_and_answers_every_search_in_time(flood_stack: dict):
    base = flood_stack["base"]
    warm = search(base, "apple nutrition facts")  # the first inference of a fresh worker is slow
    assert warm.status == 200 and warm.json()["reranked_applied"] is True, warm.body[:2000]

    with ThreadPoolExecutor(CONCURRENT_SEARCHES) as pool:
        replies = list(pool.map(lambda query: search(base, query), flood_queries()))

    assert [reply.status for reply in replies] == [200] * CONCURRENT_SEARCHES
    slowest = max(reply.seconds for reply in replies)
    assert slowest < BUDGET_SECONDS + MARGIN_SECONDS, f"a search waited {slowest:.1f} s"
    bodies = [reply.json() for reply in replies]
    statuses = Counter(body["rerank_status"] for body in bodies)
    assert statuses["busy"] >= 1, statuses
    assert statuses["ok"] >= 1, statuses
    # A search the worker took but could not finish in time falls back too, as a timeout.
    assert set(statuses) <= {"ok", "busy", "timeout"}, statuses
    for body in bodies:
        assert body["fulltext"], body["query"]
        if body["rerank_status"] == "busy":
            assert body["reranked_applied"] is False and body["reranked"] == []
            assert body["notice"].startswith("The reranker is busy with other searches (the reranker's queue is full")
            assert body["notice"].endswith("Showing the full-text order.")

    # The flood is over: the queue drained, and the next search is reranked again.
    after = search(base, "mercury toxicity").json()
    assert after["reranked_applied"] is True, after["notice"]
    assert flood_stack["worker"].alive()
