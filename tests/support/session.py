"""What the whole test session shares: its queue, its folders, the environment of the child
processes it starts, and starting a rerank worker on its services and waiting for it to be ready.
Fixtures live in conftest.py."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from common.processes import ChildExited, wait_until_ready
from tests.support.processes import ROOT, WORKER_READY_SECONDS, Started, start_worker

ARTIFACTS = ROOT / "test-artifacts"
MODELS = ROOT / ".data" / "test-models"
# One queue per test session, so a `make run` worker on the same Redis never takes our tasks.
SESSION_QUEUE = f"rerank-test-{uuid.uuid4().hex[:8]}"
# Tests that need a reranked answer must not fall back because a shared 2-core machine is busy;
# tests of the time budget set their own small RERANK_TIMEOUT.
TEST_RERANK_TIMEOUT = 30.0


def child_env(**extra: str) -> dict[str, str]:
    """Return the environment for a child process of the site, with test database and queue."""
    env = dict(os.environ)
    env["DATABASE_URL"] = session_database_url()
    # A cross-encoder worker loads no embedding model beside it unless a test asks for one (the
    # e5 tests' workers embed with their own bi-encoder): the session's searches stay BM25's pool.
    env.setdefault("EMBEDDING_MODEL", "none")
    env.update(extra)
    return env


def session_database_url() -> str:
    """Return DATABASE_URL with the test database's name in place of the site's."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + settings.DATABASES["default"]["NAME"]))


def start_own_worker(queue: str, model: str, artifacts_dir: Path) -> Started:
    """Start a rerank worker on the session's Redis and database serving `model` on `queue`,
    with no fallback model (its log: artifacts_dir/worker-<queue>.log)."""
    return start_worker(
        child_env(),
        artifacts_dir / f"worker-{queue}.log",
        queue=queue,
        model=model,
        extra_env={"RERANKER_FALLBACK_MODEL": ""},
    )


def wait_for_worker(worker: Started, timeout: float = WORKER_READY_SECONDS) -> dict:
    """Return the worker's status once it answers ready, or says which model it cannot serve;
    fail with its log otherwise (network: Redis, a status task every round)."""
    from search.worker_client import worker_status

    last: dict = {}

    def answered() -> dict | None:
        nonlocal last
        last = worker_status(timeout=2.0).as_message()  # a worker.protocol.WorkerStatus, as JSON
        if last.get("loading"):
            return None  # answered while its model (or the fallback) is still loading: not yet
        if last.get("ready") or last.get("problem", "").startswith("the model"):
            return last
        if "problem" in last and "no rerank worker" not in last["problem"]:
            return last
        return None

    try:
        status = wait_until_ready(worker.process, answered, timeout=timeout)
    except ChildExited:
        pytest.fail(f"rerank worker exited with {worker.process.returncode}:\n{worker.log()[-4000:]}")
    if status is None:
        pytest.fail(f"rerank worker not ready after {timeout:.0f}s ({last}):\n{worker.log()[-4000:]}")
    return status
