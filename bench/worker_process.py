"""Start a real rerank worker for a benchmark: the product's command line (worker.command),
a queue of its own, started, waited for and stopped through common.processes."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.common import ROOT

# A fresh worker loads torch and the model first (seconds, more on a busy machine).
READY_SECONDS = 180.0


@contextlib.contextmanager
def running_worker(
    model: str, log_path: Path, extra_env: dict[str, str] | None = None, *, pool: str = "threads"
) -> Iterator[str]:
    """Yield the queue of a worker started with worker.command; stop it after.

    `pool="solo"` runs the one-search-at-a-time worker of before, for comparisons.

    Needs Django set up (bench.common.django_stack): the readiness check sends a status task.
    """
    from django.conf import settings

    from common.processes import ChildExited, start_group, stop_group, wait_until_ready
    from search.worker_client import worker_status
    from worker.command import worker_command

    queue = f"rerank-bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "RERANK_QUEUE": queue,
        "RERANKER_MODEL": model,
        "RERANKER_FALLBACK_MODEL": "",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    process = start_group(worker_command(queue, pool=pool), env=env, cwd=ROOT, log_path=log_path)
    previous = settings.RERANK_QUEUE
    settings.RERANK_QUEUE = queue
    try:
        try:
            ready = wait_until_ready(process, lambda: worker_status(timeout=2.0).ready, timeout=READY_SECONDS)
        except ChildExited:
            ready = None
        if not ready:
            raise RuntimeError(f"the bench worker did not become ready; see {log_path}")
        yield queue
    finally:
        settings.RERANK_QUEUE = previous
        stop_group(process, on_kill=lambda: print("bench worker did not stop; killing it", flush=True))
