"""Start and stop the real processes tests talk to: rerank workers and the web site.

Every process here is started by the test run itself and stopped by its own process id
(its process group), never the machine's shared services.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKER_READY_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL, timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_worker(
    env: dict[str, str], log_path: Path, *, queue: str, model: str, extra_env: dict | None = None
) -> Started:
    """Start a real Celery rerank worker process (threads pool, one batching thread) for `queue`."""
    child_env = {**env, "RERANK_QUEUE": queue, "RERANKER_MODEL": model, "PYTHONUNBUFFERED": "1"}
    child_env.update(extra_env or {})
    command = [
        sys.executable, "-m", "celery", "-A", "searchsite", "worker",
        "-Q", queue, "-P", "threads", "-c", "16", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"test-{queue}-{time.monotonic_ns()}@%h",
    ]  # fmt: skip
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        command, env=child_env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )
    log_file.close()
    return Started(process=process, log_path=log_path)


def start_web(env: dict[str, str], log_path: Path, port: int) -> Started:
    """Start the site's web server (Django runserver, no autoreload) on 127.0.0.1:`port`."""
    command = [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"]
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )
    log_file.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"web server exited early:\n{log_path.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return Started(process=process, log_path=log_path)
        time.sleep(0.1)
    raise RuntimeError("web server did not start listening within 60 s")
