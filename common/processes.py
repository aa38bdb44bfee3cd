"""Child processes in a process group of their own: start one, wait until it is ready, stop the group.

devstack (`make run`), the tests and the benchmarks start their workers, web servers and Redis
this way, and stop only what they started, by its process id; a free loopback port for a web
server they start comes from here too. Imports neither Django nor torch.

Children die with their parent: a parent stopped by a signal stops them in order (devstack's and
the test run's signal handlers), and on Linux a parent that dies without a chance to (SIGKILL, a
crash) takes them with it: the kernel sends them SIGKILL (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
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

# The signals that stop a run: Ctrl-C, a supervisor's or a timeout's stop, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# prctl(2): the signal the kernel sends a child when the thread that started it exits.
PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if os.uname().sysname != "Linux":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


class ChildExited(RuntimeError):
    """The child exited while we waited for it to be ready."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.returncode = process.returncode
        super().__init__(f"the process exited with {process.returncode}")


def start_group(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = ROOT,
    log_path: Path | None = None,
    output: int | None = None,
) -> subprocess.Popen:
    """Return a child running `command` in a session, so a process group, of its own.

    Its output is appended to `log_path`, goes to `output` (subprocess.PIPE: read it from
    `.stdout`), or is shared with ours without either. A Ctrl-C in the
    terminal reaches only us, so we stop our children in order; if we die first, it dies too
    (die_with_parent).
    """
    options = {"env": env, "cwd": cwd, "start_new_session": True, "preexec_fn": die_with_parent()}
    if output is not None:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, **options)
    if log_path is None:
        return subprocess.Popen(command, **options)
    with log_path.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **options)


def die_with_parent() -> Callable[[], None] | None:
    """Return a `preexec_fn` that makes the child get SIGKILL when we die (Linux), or None.

    The kernel ties the signal to the thread that starts the child, not to the process: a child
    started from another thread (a web request, a test's helper thread) would die when that thread
    ends, so only children of the main thread get it; the others are stopped by whoever started
    them, as before.
    """
    if _PRCTL is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()
    prctl = _PRCTL

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # we died between fork and prctl: nobody would stop the child
            os.kill(os.getpid(), signal.SIGKILL)

    return in_child


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


def stop_groups(
    processes: list[subprocess.Popen],
    *,
    grace: float,
    on_kill: Callable[[subprocess.Popen], None] | None = None,
) -> None:
    """Stop the process groups of several children we started, together: SIGTERM to all of them,
    then SIGKILL to those still running after `grace` seconds in all (`on_kill(process)` first)."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            if on_kill is not None:
                on_kill(process)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def pid_alive(pid: int) -> bool:
    """Return whether a process with this pid runs (ours or not); a zombie, which has exited and
    waits only to be reaped by its parent, does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # /proc/<pid>/stat: "pid (name) state ...": the name may hold spaces and parentheses.
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # it exited since; without /proc, kill(0) is all we know
    except (OSError, IndexError):
        return True
    return state != "Z"


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


def interrupt_on_stop_signals() -> None:
    """Make the first SIGINT, SIGTERM or SIGHUP raise KeyboardInterrupt and later ones do nothing.

    For the test run (tests/conftest.py): pytest then ends the session in order, its fixtures
    stopping the servers and workers they started and dropping the test database, where SIGTERM's
    and SIGHUP's default would end it at once with them still running. A repeat (devstack passes
    on the Ctrl-C the terminal already sent) must not break that teardown. Main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def ignore(signum: int, frame: object) -> None:
        pass  # a Python handler, not SIG_IGN: children started now still get the default

    def interrupt(signum: int, frame: object) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, ignore)
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)


def free_port() -> int:
    """Return a loopback TCP port that nothing listens on now (for a web server we start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
