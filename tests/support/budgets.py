"""How long a fault test lets a search wait, derived from the budget the test configured (the
rerank budget RERANK_TIMEOUT, the database connect timeout), never a fixed number of seconds.

The tests share a busy 2-core machine, where all the work around a budget can be slow, so the
margins are generous: a failure means that something waited past its budget, not that the machine
was loaded. The precise check is what the site itself reports waiting for the worker
(`timings.rerank_ms`); the bound on a whole request only catches a wait without any limit.
"""

from __future__ import annotations

# The web waits for the worker at most its budget. Sending the task and, after a timeout, asking
# Redis why (the heartbeat, the queue length) come on top: half the budget again is ample.
RERANK_WAIT_FACTOR = 1.5
# A whole request adds the full-text search, highlighting, rendering and the wait for a free web
# thread; under a flood of concurrent searches on two busy cores that can take as long as the
# budget again, and more. Without any bound a request would wait until the client gives up.
REPLY_FACTOR = 3.0


def rerank_wait_limit_ms(budget_seconds: float) -> float:
    """Return the most milliseconds a search may report waiting for the worker (`timings.rerank_ms`)."""
    return budget_seconds * RERANK_WAIT_FACTOR * 1000


def reply_limit_seconds(budget_seconds: float) -> float:
    """Return the most seconds a whole request may take when what it waits for is bounded by `budget_seconds`."""
    return budget_seconds * REPLY_FACTOR
