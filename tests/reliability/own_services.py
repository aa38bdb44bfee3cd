"""Service instances of a fault test's own, and a plain HTTP client for the site processes.

Each instance is started by the test and stopped by its own handle or process id: a private
PostgreSQL 16 (pgserver) on a unix socket in the test's folder, a private redis-server (see
tests/search/test_fallbacks.OwnRedis), the web site as a real process. Never the shared services.
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

import redis

from tests.search.test_fallbacks import OwnRedis
from tests.support.processes import ROOT, Started, free_port, start_web

# Seconds a request to one of our own site processes may take before the client gives up.
HTTP_TIMEOUT_SECONDS = 60.0


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


def redis_client(own_redis: OwnRedis) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(own_redis.socket_path), socket_connect_timeout=1, decode_responses=True)


def start_site(env: dict[str, str], log_path: Path) -> tuple[Started, str]:
    """Start the web site (runserver, threaded) on a free port; return it and its base URL."""
    port = free_port()
    # As `make run` does: runserver's thread-per-request never reuses a kept connection.
    env = {"DATABASE_CONN_MAX_AGE": "0", **env}
    return start_web(env, log_path, port), f"http://127.0.0.1:{port}"


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    """Poll `predicate` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
