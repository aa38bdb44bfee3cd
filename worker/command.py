"""The rerank worker's command line, in one place: `make run` (searchsite.devstack), the tests,
`evaluate`'s private worker and the benchmarks start it from here, and the Dockerfile and
docker-compose.yml spell out the same arguments (tests/site/test_compose.py compares them).

Imports neither Django nor torch.
"""

from __future__ import annotations

import os
import sys

# Searches a rerank worker takes at once: its task threads wait while one batching thread runs
# their pairs through the model together (worker/batching.py).
WORKER_THREADS = 16


def worker_arguments(queue: str, *, name: str, pool: str = "threads") -> list[str]:
    """Return celery's arguments for a rerank worker on `queue` named `name` (`-A searchsite worker ...`).

    The threads pool is safe with CUDA (no fork); `pool="solo"` is the one-search-at-a-time worker
    of before, kept for the benchmarks' comparisons.
    """
    concurrency = WORKER_THREADS if pool == "threads" else 1
    return [
        "-A", "searchsite", "worker",
        "-Q", queue, "-P", pool, "-c", str(concurrency), "--loglevel", "INFO",
        "--without-gossip", "--without-mingle", "-n", name,
    ]  # fmt: skip


def worker_command(queue: str, *, name: str | None = None, pool: str = "threads") -> list[str]:
    """Return the command that starts a rerank worker with this Python (node name default:
    `rerank-<our pid>@%h`)."""
    node = name or f"rerank-{os.getpid()}@%h"
    return [sys.executable, "-m", "celery", *worker_arguments(queue, name=node, pool=pool)]
