"""A search always answers: when the worker, Redis or the model fails, the full-text order stands.

Every fault here happens to an instance the test started itself (its own worker on its own
queue, its own redis-server on its own unix socket), stopped by its process id.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from search import rerank_client
from tests.support.own_services import OwnRedis, start_ready_worker
from tests.support.processes import free_port, start_gunicorn
from tests.support.session import child_env, start_own_worker, wait_for_worker

pytestmark = pytest.mark.faults

QUERY = "苹果营养价值"
# A fault must not make a search wait much past its budget: the budget plus this margin.
MARGIN_SECONDS = 3.0
# The budget the tests give the reranker, so a fallback costs about a second.
BUDGET_SECONDS = 1.0
# The budget while a test shows that reranking works: a cold worker on a busy CPU is slow.
GENEROUS_SECONDS = 30.0
# Few candidates keep each rerank small.
SEARCH = {"q": QUERY, "k_initial": 3}
# The web process's budget in the Redis test, fixed when it starts: enough for a busy CPU.
SITE_BUDGET_SECONDS = 20.0


def unique_queue() -> str:
    return f"rerank-fault-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _no_rerank_cache(settings):
    """Every search here must reach the worker (or fail to): no scores from the rerank cache."""
    settings.RERANK_CACHE_SECONDS = 0


@pytest.fixture
def own_worker(own_queue: str, tiny_model_dir: Path, artifacts_dir: Path):
    """A worker of this test's own, serving the tiny CrossEncoder on the test's queue."""
    worker = start_own_worker(own_queue, str(tiny_model_dir), artifacts_dir)
    try:
        status = wait_for_worker(worker)
        assert status.get("ready"), status
        yield worker
    finally:
        worker.stop()


def timed_get(client, path: str, params: dict):
    started = time.monotonic()
    response = client.get(path, params)
    return response, time.monotonic() - started


def fulltext_ids(body: dict) -> list[int]:
    return [row["document_id"] for row in body["fulltext"]]


def assert_fallback(body: dict, status: str, *phrases: str) -> None:
    """The API answered with the full-text order only, and a notice saying why."""
    assert body["reranked_applied"] is False
    assert body["rerank_status"] == status
    assert body["reranked"] == []
    assert body["fulltext"], "the full-text order must still be there"
    assert all(row["rerank_score"] is None for row in body["fulltext"])
    assert "Showing the full-text order." in body["notice"]
    for phrase in phrases:
        assert phrase in body["notice"]


def assert_fallback_page(response, *phrases: str) -> None:
    assert response.status_code == 200
    html = response.content.decode()
    assert "Full-text order" in html
    assert "No reranked order for this search; the full-text order stands." in html
    outcome = response.context["outcome"]
    assert not outcome.is_reranked
    assert outcome.fulltext
    for phrase in phrases:
        assert any(phrase in notice for notice in outcome.notices), outcome.notices


# --- the worker dies ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_answers_with_the_fulltext_order_when_the_worker_is_killed(client, settings, own_worker):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    before = client.get("/api/v1/search", SEARCH).json()
    assert before["reranked_applied"] is True, before["notice"]

    own_worker.kill()  # SIGKILL, by the process id we started
    assert not own_worker.alive()
    settings.RERANK_TIMEOUT = BUDGET_SECONDS

    api, api_seconds = timed_get(client, "/api/v1/search", SEARCH)
    page, page_seconds = timed_get(client, "/search", SEARCH)

    assert api.status_code == 200
    body = api.json()
    assert_fallback(body, "timeout", "did not answer within 1 s")
    assert fulltext_ids(body) == fulltext_ids(before)
    assert_fallback_page(page, "did not answer within 1 s")
    assert api_seconds < settings.RERANK_TIMEOUT + MARGIN_SECONDS
    assert page_seconds < settings.RERANK_TIMEOUT + MARGIN_SECONDS


# --- the budget runs out ------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_names_the_time_budget_when_the_worker_cannot_answer_in_time(client, settings, rerank_worker):
    settings.RERANK_TIMEOUT = 0.001

    api = client.get("/api/v1/search", SEARCH)
    page = client.get("/search", SEARCH)

    assert api.status_code == 200
    assert_fallback(api.json(), "timeout", "did not answer within 0.001 s")
    assert_fallback_page(page, "did not answer within 0.001 s")
    # The worker dropped the expired work and still serves a search with a real budget.
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    assert client.get("/api/v1/search", SEARCH).json()["reranked_applied"] is True


# --- the model cannot be loaded -----------------------------------------------------------------


@pytest.mark.django_db
def test_it_quotes_the_workers_reason_when_the_model_cannot_load(client, settings, own_queue, artifacts_dir, tmp_path):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS  # the answer is immediate; no need to race it
    worker = start_own_worker(own_queue, str(tmp_path / "missing" / "model"), artifacts_dir)
    try:
        status = wait_for_worker(worker)
        assert status.get("ready") is False and "does not exist" in status["problem"], status

        api = client.get("/api/v1/search", SEARCH)
        page = client.get("/search", SEARCH)
        rerank = client.post(
            "/api/v1/rerank", {"query": QUERY, "documents": ["红富士苹果"]}, content_type="application/json"
        )

        assert api.status_code == 200
        assert_fallback(api.json(), "error", "The reranker reported an error", "does not exist")
        assert_fallback_page(page, "does not exist")
        assert rerank.status_code == 503
        assert rerank.json()["status"] == "error"
        assert "does not exist" in rerank.json()["error"]
        assert worker.alive(), worker.log()[-2000:]
    finally:
        worker.stop()


def test_it_turns_a_task_that_raises_into_a_notice(rerank_worker):
    # A group holding a non-text makes the real task raise inside the worker.
    reply = rerank_client.rerank(QUERY, [[None]], timeout=10.0)
    assert not reply.ok
    assert reply.status == "error"
    assert reply.notice.startswith("The reranker failed on this query")
    assert rerank_client.rerank(QUERY, [["红富士苹果"]], timeout=10.0).ok


# --- Redis goes away and comes back -------------------------------------------------------------


def fetch(url: str) -> tuple[int, str, float]:
    """Return (status, body, seconds) of a GET; an HTTP error status is returned, not raised."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - our own site
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode()
    return status, body, time.monotonic() - started


def test_it_survives_redis_going_down_and_reranks_again_when_it_returns(
    django_db_setup, tiny_model_dir, artifacts_dir, tmp_path
):
    own_redis = OwnRedis(tmp_path)
    queue = unique_queue()
    env = child_env(
        REDIS_URL=own_redis.url,
        RERANK_QUEUE=queue,
        RERANK_TIMEOUT=str(SITE_BUDGET_SECONDS),
        RERANK_CACHE_SECONDS="0",
        SEARCH_ANON_THROTTLE="100000/min",
    )
    port = free_port()
    query = urllib.parse.urlencode(SEARCH)
    api, page = f"http://127.0.0.1:{port}/api/v1/search?{query}", f"http://127.0.0.1:{port}/search?{query}"
    worker = site = None
    try:
        own_redis.start()
        worker = start_ready_worker(env, queue, tiny_model_dir, artifacts_dir)
        site = start_gunicorn(env, artifacts_dir / f"gunicorn-{queue}.log", port)
        status, body, _ = fetch(api)
        assert status == 200
        before = json.loads(body)
        assert before["reranked_applied"] is True, before["notice"]

        own_redis.kill()
        for _ in range(2):  # the second search meets what the first one's failure left behind
            status, body, seconds = fetch(api)
            assert status == 200, body[-2000:]
            down = json.loads(body)
            assert_fallback(down, "unavailable", "the task queue cannot be reached")
            assert fulltext_ids(down) == fulltext_ids(before)
            assert seconds < SITE_BUDGET_SECONDS + MARGIN_SECONDS
            status, html, seconds = fetch(page)
            assert status == 200
            assert "Reranking is unavailable" in html and "Full-text order" in html
            assert seconds < SITE_BUDGET_SECONDS + MARGIN_SECONDS

        own_redis.start()  # on the same socket
        worker.kill()
        worker = start_ready_worker(env, queue, tiny_model_dir, artifacts_dir)
        status, body, _ = fetch(api)  # the very next search, through the same web process
        assert status == 200
        after = json.loads(body)
        assert after["reranked_applied"] is True, after["notice"]
        assert after["notice"] == ""
        assert site.alive()
    finally:
        if site:
            site.stop()
        if worker:
            worker.kill()
        own_redis.kill()
