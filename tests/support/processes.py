"""Start and stop the real processes tests talk to: rerank workers and the web site.

Every process here is started by the test run itself and stopped by its own process id
(its process group, through common.processes), never the machine's shared services.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from common.processes import ROOT, ChildExited, free_port, start_group, stop_group, wait_until_ready
from worker.command import worker_command

WORKER_READY_SECONDS = 120.0
# Seconds the web server gets to listen on its port.
WEB_READY_SECONDS = 60.0

__all__ = ["ROOT", "Started", "free_port", "start_gunicorn", "start_site", "start_web", "start_worker"]


@dataclass
class Started:
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the process group we started: `sig`, then SIGKILL if it lingers."""
        stop_group(self.process, sig=sig, grace=timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL, timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_worker(
    env: dict[str, str], log_path: Path, *, queue: str, model: str, extra_env: dict | None = None
) -> Started:
    """Start a real Celery rerank worker process (`make run`'s command line) for `queue`."""
    child_env = {**env, "RERANK_QUEUE": queue, "RERANKER_MODEL": model, "PYTHONUNBUFFERED": "1"}
    child_env.update(extra_env or {})
    command = [*worker_command(queue, name=f"test-{queue}-{time.monotonic_ns()}@%h"), "--without-heartbeat"]
    return Started(process=start_group(command, env=child_env, log_path=log_path), log_path=log_path)


def start_web(env: dict[str, str], log_path: Path, port: int) -> Started:
    """Start the site's web server (Django runserver, no autoreload) on 127.0.0.1:`port`."""
    command = [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"]
    process = start_group(command, env=env, log_path=log_path)
    try:
        listening = wait_until_ready(process, lambda: _listening(port), timeout=WEB_READY_SECONDS)
    except ChildExited:
        raise RuntimeError(f"web server exited early:\n{log_path.read_text(errors='replace')}") from None
    except BaseException:  # the run was interrupted while it started: stop it now
        stop_group(process)
        raise
    if listening is None:
        stop_group(process)
        raise RuntimeError(f"web server did not start listening within {WEB_READY_SECONDS:.0f} s")
    return Started(process=process, log_path=log_path)


def start_site(env: dict[str, str], log_path: Path) -> tuple[Started, str]:
    """Start the web site (runserver, threaded) on a free port; return it and its base URL."""
    port = free_port()
    # As `make run` does: runserver's thread-per-request never reuses a kept connection.
    env = {"DATABASE_CONN_MAX_AGE": "0", **env}
    return start_web(env, log_path, port), f"http://127.0.0.1:{port}"


def start_gunicorn(env: dict[str, str], log_path: Path, port: int) -> Started:
    """Start the site as in production (gunicorn), one sync worker: every request reuses the
    same thread, hence the same cached Celery connections a real Redis outage breaks."""
    command = [
        sys.executable, "-m", "gunicorn", "searchsite.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "60",
    ]  # fmt: skip
    site = Started(process=start_group(command, env=env, log_path=log_path), log_path=log_path)
    try:
        healthy = wait_until_ready(site.process, lambda: _healthy(port), timeout=WEB_READY_SECONDS, interval=0.2)
    except ChildExited:
        raise RuntimeError(f"gunicorn exited early:\n{site.log()[-4000:]}") from None
    if not healthy:
        site.stop()
        raise RuntimeError(f"gunicorn did not answer within {WEB_READY_SECONDS:.0f} s:\n{site.log()[-4000:]}")
    return site


def _healthy(port: int) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
        return answer.status == 200
    return False


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False
