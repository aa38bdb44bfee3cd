"""Redis (broker, results, cache, throttle counters) stops, then starts again, under a running site.

While Redis is down the search API and the result page answer in the full-text order with a
notice, the rerank API with a JSON error, the anonymous throttles and the rerank cache fail open,
and the document page is unaffected. Once Redis is back, the worker reconnects by itself (neither
it nor the site restarts), and reranking, the cache and the throttle work again.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from pathlib import Path

import pytest

from tests.support.budgets import reply_limit_seconds, rerank_wait_limit_ms
from tests.support.own_services import OwnRedis, ask_own_worker, http, start_ready_worker, wait_for
from tests.support.processes import free_port, start_gunicorn
from tests.support.session import child_env

pytestmark = pytest.mark.faults

# Anonymous searches per minute in this test's site: the test goes past it while Redis is down.
THROTTLE_PER_MINUTE = 8
# The web process's rerank budget (seconds): a search never waits longer for a Redis that is gone.
BUDGET_SECONDS = 20.0
# Seconds the worker gets to find the restarted Redis by itself.
RECONNECT_SECONDS = 60.0
QUERY = {"q": "python snake diet", "k_initial": 3}
RERANK = {"query": "python snake diet", "documents": ["Pythons swallow rodents whole.", "Python lists slice."]}


def ids(rows: list[dict]) -> list[int]:
    return [row["document_id"] for row in rows]


def post_json(url: str, payload: dict):
    return http(url, method="POST", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})


def test_it_fails_open_while_redis_is_down_and_recovers_without_restarts(
    django_db_setup, tiny_model_dir: Path, artifacts_dir: Path, tmp_path: Path
):
    own_redis = OwnRedis(tmp_path)
    own_redis.start()
    queue = f"rerank-redis-{uuid.uuid4().hex[:8]}"
    env = child_env(
        REDIS_URL=own_redis.url,
        RERANK_QUEUE=queue,
        RERANK_TIMEOUT=str(BUDGET_SECONDS),
        RERANK_CACHE_SECONDS="3600",  # the rerank cache is on: its store goes down too
        RERANKER_MODEL=str(tiny_model_dir),  # the cache keeps only the configured model's scores
        SEARCH_ANON_THROTTLE=f"{THROTTLE_PER_MINUTE}/min",
        SEARCH_PAGE_ANON_THROTTLE=f"{THROTTLE_PER_MINUTE}/min",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    search_url = f"{base}/api/v1/search?{urllib.parse.urlencode(QUERY)}"
    page_url = f"{base}/search?{urllib.parse.urlencode(QUERY)}"
    worker = start_ready_worker(env, queue, tiny_model_dir, artifacts_dir)
    site = start_gunicorn(env, artifacts_dir / f"gunicorn-{queue}.log", port)
    try:
        before = http(search_url)
        assert before.status == 200 and before.json()["reranked_applied"] is True, before.body[:2000]
        document_id = before.json()["fulltext"][0]["document_id"]

        own_redis.kill()
        searches = [http(search_url) for _ in range(THROTTLE_PER_MINUTE + 2)]  # past the rate
        pages = [http(page_url) for _ in range(THROTTLE_PER_MINUTE + 2)]  # the page's own rate, too
        rerank = post_json(f"{base}/api/v1/rerank", RERANK)
        document = http(f"{base}/documents/{document_id}?q=python")

        for reply in searches:
            assert reply.status == 200, reply.body[:2000]  # never 429 nor 500: the throttle fails open
            body = reply.json()
            assert body["rerank_status"] == "unavailable"
            assert body["reranked_applied"] is False and body["reranked"] == []
            assert "the task queue cannot be reached" in body["notice"], body["notice"]
            assert "Showing the full-text order." in body["notice"]
            assert ids(body["fulltext"]) == ids(before.json()["fulltext"])
            assert body["timings"]["rerank_ms"] <= rerank_wait_limit_ms(BUDGET_SECONDS), body["timings"]
            assert reply.seconds < reply_limit_seconds(BUDGET_SECONDS)
        for reply in pages:
            assert reply.status == 200, reply.body[:2000]
            assert "Reranking is unavailable" in reply.body and "Full-text order" in reply.body
        assert rerank.status == 503, rerank.body[:2000]
        assert rerank.headers.get_content_type() == "application/json"
        assert rerank.json()["status"] == "unavailable"
        assert rerank.json()["error"].startswith("Reranking is unavailable: the task queue cannot be reached")
        assert document.status == 200 and "<mark>" in document.body

        own_redis.start()  # empty, on the same socket; neither the site nor the worker restarts
        wait_for(
            lambda: ask_own_worker(own_redis.url, queue, "worker.tasks.status", [], 2.0).get("ready"),
            timeout=RECONNECT_SECONDS,
            interval=1.0,
            what="the worker reconnecting to the restarted Redis",
        )
        again = http(search_url)
        assert again.status == 200 and again.json()["reranked_applied"] is True, again.body[:2000]
        assert again.json()["notice"] == ""
        cached = http(search_url).json()
        assert cached["timings"]["rerank_cached"] == len(cached["fulltext"]), "the rerank cache works again"
        # The throttle counts again: the counter started afresh with the new Redis.
        statuses = [http(search_url).status for _ in range(THROTTLE_PER_MINUTE)]
        assert statuses[-1] == 429, statuses
        throttled = http(search_url)
        assert throttled.status == 429 and 1 <= int(throttled.headers["Retry-After"]) <= 60
        assert site.alive() and worker.alive()
    finally:
        site.stop()
        worker.kill()
        own_redis.kill()
