"""Child processes in a process group of their own: start one, wait until it is ready, stop the group.

devstack (`make run`), the tests and the benchmarks start their workers, web servers and Redis
this way, and stop only what they started, by its process id; a free loopback port for a web
server they start comes from here too. Imports neither Django nor torch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
# Seconds a child gets to exit after the stop signal before its group is killed.
STOP_GRACE_SECONDS = 10.0
# Seconds between two readiness checks (a check that waits itself, as a status task does, adds to it).
POLL_SECONDS = 0.1

Answer = TypeVar("Answer")


class ChildExited(RuntimeError):
    """The child exited while we waited for it to be ready."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.returncode = process.returncode
        super().__init__(f"the process exited with {process.returncode}")


def start_group(
    command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = ROOT, log_path: Path | None = None
) -> subprocess.Popen:
    """Return a child running `command` in a session, so a process group, of its own.

    Its output is appended to `log_path`, or shared with ours without one. A Ctrl-C in the
    terminal reaches only us, so we stop our children in order.
    """
    if log_path is None:
        return subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_ready(
    process: subprocess.Popen,
    ready: Callable[[], Answer],
    *,
    timeout: float,
    interval: float = POLL_SECONDS,
) -> Answer | None:
    """Return the first true answer of `ready()` (a status, True); None when `timeout` seconds
    pass without one. Raises ChildExited when `process` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ChildExited(process)
        answer = ready()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def stop_group(
    process: subprocess.Popen,
    *,
    sig: int = signal.SIGTERM,
    grace: float = STOP_GRACE_SECONDS,
    on_kill: Callable[[], None] | None = None,
) -> None:
    """Stop the process group of a child we started (by its pid): `sig`, then SIGKILL when it is
    still running after `grace` seconds (`on_kill` is called first, to say so)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        if on_kill is not None:
            on_kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def pid_alive(pid: int) -> bool:
    """Return whether a process with this pid exists (ours or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM raises SystemExit(143), so `finally` clauses stop what the block
    started (a command killed by its supervisor would otherwise leave its children running).

    Only the main thread may set signal handlers; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_now(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def free_port() -> int:
    """Return a loopback TCP port that nothing listens on now (for a web server we start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
