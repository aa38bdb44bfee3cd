"""`make test` and `make run` stop everything they started, and the dev stack outlives its worker.

- A `make test` stopped with SIGTERM (a timeout, a supervisor) leaves nothing it started running.
- A new `make test` takes its test database back from a run that was killed with connections
  still open to it, ending those connections only, and refuses a database a live run holds.
- Under `make run`, a worker killed with SIGKILL is started again while the web keeps answering,
  the terminal says when the site is ready and which model reranks, and SIGTERM stops it all.

Each test runs devstack (`make test` / `make run`'s entry point) as a process of its own, on a
database of its own, and stops only that process and what it started, by process id.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from common.processes import pid_alive, start_group, stop_group
from tests.support.database_claim import claim_test_database, maintenance_url
from tests.support.processes import ROOT, free_port

pytestmark = pytest.mark.faults

INNER = "tests/support/lifecycle_inner.py"
# Seconds an inner run gets to start its live site, or devstack to bring up the site (a busy
# 2-core machine migrates a fresh database and loads a worker in a few minutes at worst).
START_SECONDS = 600.0
# Seconds a stopped devstack gets to exit, then each process it started to be gone.
EXIT_SECONDS = 180.0
GONE_SECONDS = 30.0


def database_url(name: str) -> str:
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + name))


@pytest.fixture
def own_database() -> str:
    """Return the name of a database of the test's own (devstack's DATABASE_URL); drop it and its
    test database afterwards."""
    name = f"lifecycle_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(maintenance_url(os.environ["DATABASE_URL"]), autocommit=True) as admin:
        for database in (name, f"test_{name}"):
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def devstack_env(database: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url(database), **extra}
    for name in ("SEARCHSITE_TESTING", "TEST_DATABASE_NAME", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    return env


def devstack(command: list[str], env: dict[str, str], log_path: Path):
    """Start devstack as `make` does, in a session of its own, so that only our signals reach it."""
    return start_group([sys.executable, "-m", "searchsite.devstack", *command], env=env, log_path=log_path)


def descendants(root: int) -> dict[int, str]:
    """Return {pid: command line} of every process below `root` (children, theirs, and so on)."""
    children: dict[int, list[int]] = defaultdict(list)
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue  # it exited while we looked
        children[parent].append(int(entry.name))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = commands.get(child, "")
            todo.append(child)
    return found


def still_running(processes: dict[int, str], within: float = GONE_SECONDS) -> dict[int, str]:
    """Return those of `processes` still running after `within` seconds (those gone return at once)."""
    deadline = time.monotonic() + within
    while True:
        alive = {pid: command for pid, command in processes.items() if pid_alive(pid)}
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.2)


def wait_for(condition, process: subprocess.Popen, log_path: Path, what: str, within: float = START_SECONDS):
    """Return the first true answer of `condition()`; fail with the log when `process` exits first
    or `within` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        answer = condition()
        if answer:
            return answer
        if process.poll() is not None:
            pytest.fail(f"devstack exited with {process.returncode} before {what}:\n{log_path.read_text()[-6000:]}")
        if time.monotonic() >= deadline:
            pytest.fail(f"no {what} within {within:.0f} s:\n{log_path.read_text()[-6000:]}")
        time.sleep(0.5)


def stop_and_check(process: subprocess.Popen, started: dict[int, str], log_path: Path) -> None:
    """SIGTERM devstack alone; it exits, and nothing it started is left running."""
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        stop_group(process, sig=signal.SIGKILL)
        pytest.fail(f"devstack did not exit within {EXIT_SECONDS:.0f} s of SIGTERM:\n{log_path.read_text()[-6000:]}")
    survivors = still_running(started)
    for pid in survivors:  # ours: started by the devstack this test started
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"left running after SIGTERM: {survivors}\n{log_path.read_text()[-6000:]}"


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 (our own loopback site)
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_sigterm_to_make_test_leaves_nothing_it_started_running(own_database, tmp_path, tiny_model_dir):
    ready_file = tmp_path / "ready"
    log_path = tmp_path / "inner.log"
    env = devstack_env(own_database, LIFECYCLE_READY_FILE=str(ready_file))
    inner = f"{INNER}::test_holds_the_live_site_until_stopped"
    run = devstack(["test", inner, "-p", "no:cacheprovider"], env, log_path)
    try:
        wait_for(ready_file.exists, run, log_path, "live site in the inner run")
        started = descendants(run.pid)
        commands = " | ".join(started.values())
        assert "pytest" in commands and "runserver" in commands and "celery" in commands, started

        stop_and_check(run, started, log_path)
    finally:
        stop_group(run, sig=signal.SIGKILL)

    assert run.returncode == 128 + signal.SIGTERM, log_path.read_text()[-3000:]
    # The session ended in order: its teardown dropped the test database.
    with psycopg.connect(maintenance_url(os.environ["DATABASE_URL"]), autocommit=True) as admin:
        left = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [f"test_{own_database}"]).fetchone()
    assert left is None, "the interrupted run's teardown should have dropped its test database"


def run_inner(database: str, tmp_path: Path) -> subprocess.CompletedProcess:
    inner = f"{INNER}::test_the_test_database_answers"
    return subprocess.run(
        [sys.executable, "-m", "searchsite.devstack", "test", inner, "-p", "no:cacheprovider"],
        env=devstack_env(database),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
        check=False,
    )


def test_a_new_run_takes_back_a_test_database_a_killed_run_left_in_use(own_database, tmp_path):
    test_name = f"test_{own_database}"
    with psycopg.connect(maintenance_url(os.environ["DATABASE_URL"]), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{test_name}"')
        admin.execute(f'CREATE DATABASE "{own_database}"')
    # What a killed run leaves: a connection still open to its test database. And one to another
    # database, which the next run must leave alone.
    left_over = psycopg.connect(database_url(test_name), autocommit=True)
    other = psycopg.connect(database_url(own_database), autocommit=True)
    try:
        result = run_inner(own_database, tmp_path)

        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        assert "1 passed" in output, output[-3000:]
        assert f"ended 1 connection(s) that an interrupted test run left to {test_name}" in output, output[-3000:]
        with pytest.raises(psycopg.OperationalError):
            left_over.execute("SELECT 1")
        assert other.execute("SELECT 1").fetchone() == (1,)
    finally:
        left_over.close()
        other.close()


def test_a_run_refuses_a_test_database_that_a_live_run_holds(own_database, tmp_path):
    claim, _ = claim_test_database(f"test_{own_database}", database_url(own_database))
    try:
        result = run_inner(own_database, tmp_path)
    finally:
        claim.close()

    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert f"another test run is using the test database test_{own_database}" in output, output[-3000:]


READY = re.compile(r"\[devstack\] ready: (?P<url>http://127\.0\.0\.1:\d+/)  reranking with (?P<model>.+?) \(")


def test_the_dev_stack_starts_a_killed_worker_again_and_keeps_the_web_up(own_database, tmp_path, tiny_model_dir):
    port = free_port()
    log_path = tmp_path / "run.log"
    env = devstack_env(
        own_database,
        PORT=str(port),
        RERANK_QUEUE=f"rerank-lifecycle-{uuid.uuid4().hex[:8]}",
        RERANKER_MODEL=str(tiny_model_dir),
        RERANKER_FALLBACK_MODEL="",
        RERANKER_VECTORS_PATH=str(tmp_path / "vectors.sqlite3"),
        SEARCH_PAGE_ANON_THROTTLE="100000/min",
    )
    run = devstack(["run"], env, log_path)
    base = f"http://127.0.0.1:{port}/"
    try:
        ready = wait_for(lambda: READY.search(log_path.read_text()), run, log_path, "ready line")
        # One clear line: the URL and the model that reranks.
        assert (ready["url"], ready["model"]) == (base, str(tiny_model_dir))
        workers = {pid: command for pid, command in descendants(run.pid).items() if "celery" in command}
        assert len(workers) == 1, workers
        (first_worker,) = workers

        os.kill(first_worker, signal.SIGKILL)  # ours: started by the devstack this test started

        def new_worker() -> int | None:
            assert http_status(f"{base}healthz") == 200, "the web must keep answering while the worker is down"
            found = [pid for pid, command in descendants(run.pid).items() if "celery" in command]
            return next((pid for pid in found if pid != first_worker), None)

        second_worker = wait_for(new_worker, run, log_path, "new worker")
        assert not pid_alive(first_worker)
        assert http_status(f"{base}search?q=python") == 200

        def ready_again() -> str | None:
            log = log_path.read_text()
            return log if len(READY.findall(log)) >= 2 else None

        log = wait_for(ready_again, run, log_path, "second ready line")
        assert "worker exited with -9" in log and "starting a new one in 1s" in log, log[-3000:]
        assert "web exited" not in log and "stopping web and worker" not in log, log[-3000:]
        assert pid_alive(second_worker) and run.poll() is None

        stop_and_check(run, descendants(run.pid), log_path)
    finally:
        stop_group(run, sig=signal.SIGKILL)
