"""A flood of searches bigger than the worker can take: its bounded queue turns the excess away at
once with a "busy" notice, so every search answers within its budget, none waits without limit.

The site and a worker run as real processes; the worker's queue is bounded by
RERANKER_MAX_QUEUED_PAIRS (small here, so that a flood of a couple of dozen searches exceeds it).
How long each search waited for the worker is what the site reports (`timings.rerank_ms`), checked
against the budget with the margins of tests/support/budgets.py, so a busy machine cannot fail it.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from search import worker_client
from tests.support.budgets import reply_limit_seconds, rerank_wait_limit_ms
from tests.support.own_services import Reply, http, start_ready_worker, wait_for
from tests.support.processes import ROOT, start_site
from tests.support.session import child_env
from worker.app import app

pytestmark = pytest.mark.faults

# Searches sent at once: more than the worker's 16 task threads, far more than its queue holds.
CONCURRENT_SEARCHES = 24
# The web process's rerank budget (seconds).
BUDGET_SECONDS = 8.0
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
    # Ready once it has answered a first rerank: the first inference of a fresh worker is the slow
    # one, and must not eat the budget of the test's first search.
    worker_env = {
        **env,
        "RERANKER_MAX_QUEUED_PAIRS": MAX_QUEUED_PAIRS,
        "RERANKER_GATHER_MS": GATHER_MS,
        # The flood comes through the search API: let all of it reach the queue's bound.
        "RERANKER_MAX_API_REQUESTS": str(CONCURRENT_SEARCHES),
    }
    worker = start_ready_worker(worker_env, queue, tiny_model_dir, artifacts_dir)
    site = None
    try:
        site, base = start_site(env, artifacts_dir / f"web-{queue}.log")
        yield {"base": base, "worker": worker, "queue": queue}
    finally:
        if site:
            site.stop()
        worker.stop()
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)


def search(base: str, query: str) -> Reply:
    return http(f"{base}/api/v1/search?{urllib.parse.urlencode({'q': query, 'k_initial': K_INITIAL})}")


def queue_drained(queue: str, *, since: float) -> bool:
    """Return whether the worker's heartbeat, written after `since` (time.time()), reports no pairs waiting."""
    beat = worker_client.worker_heartbeat(queue)
    return beat is not None and beat.at > since and beat.queued_pairs == 0


def test_it_turns_a_flood_away_as_busy_and_answers_every_search_in_time(flood_stack: dict):
    base = flood_stack["base"]
    warm = search(base, "apple nutrition facts")  # the first inference of a fresh worker is slow
    assert warm.status == 200 and warm.json()["reranked_applied"] is True, warm.body[:2000]

    with ThreadPoolExecutor(CONCURRENT_SEARCHES) as pool:
        replies = list(pool.map(lambda query: search(base, query), flood_queries()))
    flood_over = time.time()

    assert [reply.status for reply in replies] == [200] * CONCURRENT_SEARCHES
    slowest = max(reply.seconds for reply in replies)
    assert slowest < reply_limit_seconds(BUDGET_SECONDS), f"a search took {slowest:.1f} s"
    bodies = [reply.json() for reply in replies]
    waits = [body["timings"]["rerank_ms"] for body in bodies]
    assert max(waits) <= rerank_wait_limit_ms(BUDGET_SECONDS), waits  # none waited past its budget
    statuses = Counter(body["rerank_status"] for body in bodies)
    assert statuses["busy"] >= 1, statuses
    assert statuses["ok"] >= 1, statuses
    # A search the worker took but could not finish in time falls back too, as a timeout.
    assert set(statuses) <= {"ok", "busy", "timeout"}, statuses
    for body in bodies:
        assert body["fulltext"], body["query"]
        if body["rerank_status"] == "busy":
            assert body["reranked_applied"] is False and body["reranked"] == []
            # The busy notice follows any notice about the query itself ("Including results for …").
            assert "The reranker is busy with other searches (the reranker's queue is full" in body["notice"]
            assert body["notice"].endswith("Showing the full-text order.")
            # Turned away, not left to wait: it came back before its budget ran out.
            assert body["timings"]["rerank_ms"] < BUDGET_SECONDS * 1000, body["timings"]

    # The flood is over. What it left in the worker's queue (searches that timed out while the model
    # ran) passes its deadline within a budget and is dropped, as the worker's next heartbeat says;
    # then the next search is reranked again.
    wait_for(
        lambda: queue_drained(flood_stack["queue"], since=flood_over),
        timeout=reply_limit_seconds(BUDGET_SECONDS),
        interval=0.5,
        what="the worker's queue to drain after the flood",
    )
    after = search(base, "mercury toxicity").json()
    assert after["reranked_applied"] is True, after["notice"]
    assert flood_stack["worker"].alive()
