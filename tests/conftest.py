"""Shared fixtures: the real PostgreSQL test database with the sample library, a real Celery
rerank worker running a real (small, locally built) CrossEncoder, and the live site."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from tests.support.processes import ROOT, Started, free_port, start_web, start_worker

ARTIFACTS = ROOT / "test-artifacts"
MODELS = ROOT / ".data" / "test-models"
# One queue per test session, so a `make run` worker on the same Redis never takes our tasks.
SESSION_QUEUE = f"rerank-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# Tests that need a reranked answer must not fall back because a shared 2-core machine is busy;
# tests of the time budget set their own small RERANK_TIMEOUT.
TEST_RERANK_TIMEOUT = 30.0


@pytest.fixture(scope="session", autouse=True)
def _session_queue():
    settings.RERANK_QUEUE = SESSION_QUEUE
    settings.RERANK_TIMEOUT = TEST_RERANK_TIMEOUT
    yield SESSION_QUEUE


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """Return a small real CrossEncoder directory (built once, offline, in a subprocess)."""
    target = MODELS / "tiny-cross-encoder"
    MODELS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "tests.support.build_tiny_model", str(target)], cwd=ROOT, check=True)
    return target


def child_env(**extra: str) -> dict[str, str]:
    """Return the environment for a child process of the site, with test database and queue."""
    env = dict(os.environ)
    env["DATABASE_URL"] = test_database_url()
    env.update(extra)
    return env


def test_database_url() -> str:
    """Return DATABASE_URL with the test database's name in place of the site's."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + settings.DATABASES["default"]["NAME"]))


def wait_until_ready(worker: Started, timeout: float = 120.0) -> dict:
    """Return the worker's status once it answers ready; fail with its log otherwise."""
    from search.rerank_client import worker_status

    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        if not worker.alive():
            pytest.fail(f"rerank worker exited with {worker.process.returncode}:\n{worker.log()[-4000:]}")
        status = worker_status(timeout=2.0)
        if status.get("ready") or status.get("problem", "").startswith("the model"):
            return status
        if "problem" in status and "no rerank worker" not in status["problem"]:
            return status
    pytest.fail(f"rerank worker not ready after {timeout:.0f}s ({status}):\n{worker.log()[-4000:]}")


@pytest.fixture(scope="session")
def rerank_worker(tiny_model_dir: Path, artifacts_dir: Path, django_db_setup) -> Started:
    """A real Celery worker process serving this session's queue with the tiny CrossEncoder."""
    worker = start_worker(
        child_env(),
        artifacts_dir / "worker.log",
        queue=SESSION_QUEUE,
        model=str(tiny_model_dir),
        extra_env={"RERANKER_FALLBACK_MODEL": ""},
    )
    status = wait_until_ready(worker)
    assert status.get("ready"), status
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Create the test database once and load the sample library into it (committed)."""
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("load_sample_library", "--if-empty")


@pytest.fixture(scope="session")
def live_site(rerank_worker: Started, artifacts_dir: Path, django_db_setup) -> str:
    """Return the base URL of the whole site running as real processes on the test database."""
    port = free_port()
    web = start_web(
        child_env(RERANK_QUEUE=SESSION_QUEUE, RERANK_TIMEOUT=str(TEST_RERANK_TIMEOUT)), artifacts_dir / "web.log", port
    )
    yield f"http://127.0.0.1:{port}"
    web.stop()
