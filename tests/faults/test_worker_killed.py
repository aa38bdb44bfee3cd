"""The rerank worker is killed (SIGKILL) in the middle of a rerank.

The waiting search answers in the full-text order with a notice, within its budget; the next
search after a restart is reranked again; nothing the dead worker held stays stuck in Redis.
Everything runs on instances of the test's own: a redis-server, the web site and workers, each
stopped by its process id.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
from celery import Celery

from searchsite.env import celery_redis_url
from tests.support.budgets import reply_limit_seconds, rerank_wait_limit_ms
from tests.support.own_services import OwnRedis, Reply, http, redis_client, start_ready_worker, wait_for
from tests.support.processes import Started, start_site
from tests.support.session import child_env

pytestmark = pytest.mark.faults

# The web process's rerank budget (seconds): what a search waits for a dead worker at most.
BUDGET_SECONDS = 8.0
# The first worker's batching thread waits this long before its first forward pass: the window
# in which the test kills it, after it took the search's task and before it answered.
GATHER_MS = "6000"
# Messages a killed worker had reserved but not started become visible again after this long
# (CELERY_VISIBILITY_TIMEOUT; production's is a minute), so the test need not wait a minute.
VISIBILITY_SECONDS = 2
# Rerank tasks the test sends straight to the queue so that the worker holds work in every state:
# running (16 threads), reserved but not acknowledged (16 more), still in the Redis list.
FLOOD_TASKS = 40
QUERY = {"q": "python snake diet", "k_initial": 3}
RECEIVED = "Task worker.tasks.rerank["


@pytest.fixture
def stack(tmp_path: Path, artifacts_dir: Path, django_db_setup):
    """A redis-server and the web site of the test's own, and a queue nobody else serves."""
    own_redis = OwnRedis(tmp_path)
    own_redis.start()
    queue = f"rerank-killed-{uuid.uuid4().hex[:8]}"
    env = child_env(
        REDIS_URL=own_redis.url,
        RERANK_QUEUE=queue,
        RERANK_TIMEOUT=str(BUDGET_SECONDS),
        RERANK_CACHE_SECONDS="0",
        SEARCH_ANON_THROTTLE="100000/min",
        SEARCH_PAGE_ANON_THROTTLE="100000/min",
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_SECONDS),
    )
    site, base = start_site(env, artifacts_dir / f"web-{queue}.log")
    yield {"redis": own_redis, "queue": queue, "env": env, "base": base}
    site.stop()
    own_redis.kill()


def search(base: str) -> Reply:
    return http(f"{base}/api/v1/search?{urllib.parse.urlencode(QUERY)}")


def search_in_background(base: str) -> tuple[threading.Thread, list[Reply]]:
    replies: list[Reply] = []
    thread = threading.Thread(target=lambda: replies.append(search(base)))
    thread.start()
    return thread, replies


def received(worker: Started) -> int:
    return worker.log().count(RECEIVED)


def stuck_messages(stack: dict) -> dict[str, int]:
    """Return what waits in Redis for the test's queue: queued, and fetched but never acknowledged."""
    client = redis_client(stack["redis"])
    unacked = [entry for entry in client.hvals("unacked") if f'"{stack["queue"]}"' in entry]
    return {"queued": client.llen(stack["queue"]), "unacknowledged": len(unacked)}


def holds_reserved_messages(stack: dict) -> bool:
    """Return whether the worker holds reserved messages and has stopped taking more.

    A message is also unacknowledged for the instant between its fetch and its task's start, so
    one look could catch that; the same counts twice, 0.3 s apart, mean its threads are busy and
    its prefetch is full.
    """
    first = stuck_messages(stack)
    time.sleep(0.3)
    return first["unacknowledged"] > 0 and stuck_messages(stack) == first


def test_it_falls_back_when_the_worker_dies_mid_rerank_and_reranks_after_a_restart(
    stack: dict, tiny_model_dir: Path, artifacts_dir: Path
):
    slow = start_ready_worker(
        {**stack["env"], "RERANKER_GATHER_MS": GATHER_MS}, stack["queue"], tiny_model_dir, artifacts_dir
    )
    try:
        warm = received(slow)
        thread, replies = search_in_background(stack["base"])
        wait_for(
            lambda: received(slow) > warm, timeout=BUDGET_SECONDS / 2, interval=0.05, what="the worker took the task"
        )
        slow.kill()  # SIGKILL, by the process id the test started
        thread.join()
    finally:
        slow.kill()

    reply = replies[0]
    assert reply.status == 200, reply.body[:2000]
    body = reply.json()
    assert body["reranked_applied"] is False
    assert body["rerank_status"] == "timeout"
    assert f"did not answer within {BUDGET_SECONDS:g} s" in body["notice"]
    assert "Showing the full-text order." in body["notice"]
    assert body["fulltext"] and body["reranked"] == []
    # It waited for the dead worker no longer than its budget (tests/support/budgets.py: generous).
    assert body["timings"]["rerank_ms"] <= rerank_wait_limit_ms(BUDGET_SECONDS), body["timings"]
    assert reply.seconds < reply_limit_seconds(BUDGET_SECONDS)

    restarted = start_ready_worker(stack["env"], stack["queue"], tiny_model_dir, artifacts_dir)
    try:
        again = search(stack["base"]).json()
        assert again["reranked_applied"] is True, again["notice"]
        assert [row["document_id"] for row in again["fulltext"]] == [row["document_id"] for row in body["fulltext"]]
        assert stuck_messages(stack) == {"queued": 0, "unacknowledged": 0}
    finally:
        restarted.stop()


def test_it_leaves_no_stuck_tasks_behind_a_killed_worker(stack: dict, tiny_model_dir: Path, artifacts_dir: Path):
    url = celery_redis_url(stack["redis"].url)
    probe = Celery("probe", broker=url, backend=url)
    groups = [["Pythons swallow rodents whole."], ["Python lists support slicing."]]
    slow = start_ready_worker(
        {**stack["env"], "RERANKER_GATHER_MS": GATHER_MS}, stack["queue"], tiny_model_dir, artifacts_dir
    )
    try:
        for i in range(FLOOD_TASKS):
            probe.send_task(
                "worker.tasks.rerank",
                args=[f"python {i}", groups, time.time(), "en"],
                queue=stack["queue"],
                expires=BUDGET_SECONDS,
            )
        wait_for(
            lambda: holds_reserved_messages(stack),
            timeout=BUDGET_SECONDS / 2,
            interval=0.05,
            what="the worker reserved messages beyond its running threads",
        )
        slow.kill()
    finally:
        slow.kill()
        probe.close()
    left = stuck_messages(stack)
    assert left["queued"] > 0 and left["unacknowledged"] > 0, left  # what a dead worker leaves behind

    time.sleep(max(BUDGET_SECONDS, VISIBILITY_SECONDS) + 1)  # every one of them has expired by now
    restarted = start_ready_worker(stack["env"], stack["queue"], tiny_model_dir, artifacts_dir)
    try:
        wait_for(
            lambda: stuck_messages(stack) == {"queued": 0, "unacknowledged": 0},
            timeout=60,
            what=f"the queue and the unacknowledged set to empty (now {stuck_messages(stack)})",
        )
        # The backlog was dropped as expired, not worked through: the model never ran for it.
        assert restarted.log().count("Discarding revoked task: worker.tasks.rerank[") >= left["queued"]
        after = search(stack["base"]).json()
        assert after["reranked_applied"] is True, after["notice"]
    finally:
        restarted.stop()
    client = redis_client(stack["redis"])
    results = list(client.scan_iter("celery-task-meta-*"))
    assert results, "the discarded tasks' results should be stored, with an expiry"
    assert all(0 < client.ttl(key) <= 300 for key in results), "a rerank result without an expiry"
