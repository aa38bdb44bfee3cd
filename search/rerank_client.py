"""The only code that sends work to the rerank worker, and waits for it within a time budget.

Whatever goes wrong (Redis down, no worker, a model error, the budget spent) comes back as a
RerankReply without scores and with a notice for the page; it never raises to the caller.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field

from celery.exceptions import TaskRevokedError
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from search import rerank_cache
from searchsite.celery import app

logger = logging.getLogger(__name__)

# What "Redis cannot be reached" looks like. Celery's Redis result consumer turns a failed
# reconnect into RuntimeError("... must be restarted"); it does reconnect on the next call.
UNREACHABLE = (KombuError, RedisError, OSError, RuntimeError)

RERANK_TASK = "worker.tasks.rerank"
STATUS_TASK = "worker.tasks.status"


@dataclass
class RerankReply:
    scores: list[float] | None = None  # one per group, None when reranking did not happen
    best: list[int] = field(default_factory=list)  # index of the winning text in each group
    model: dict | None = None
    notice: str = ""
    status: str = "ok"  # ok | unavailable | timeout | busy | error | skipped
    queue_ms: float | None = None
    model_ms: float | None = None
    total_ms: float = 0.0
    cached: int = 0  # groups answered from the rerank cache (search.rerank_cache)

    @property
    def ok(self) -> bool:
        return self.scores is not None


def rerank(
    query: str,
    groups: list[list[str]],
    *,
    timeout: float | None = None,
    language: str | None = None,
    versions: list[str] | None = None,
) -> RerankReply:
    """Return the worker's scores for `groups`, or a reply with a notice (network: Redis).

    `language` ("en", "zh", "mixed") lets the worker skip queries its model does not serve.
    With `versions` (each group's document content version) scores are cached in Redis and only
    the groups not cached go to the worker (one more Redis round trip).
    """
    budget = settings.RERANK_TIMEOUT if timeout is None else timeout
    started = time.perf_counter()
    if versions is not None and rerank_cache.enabled():
        reply = _call_cached(query, groups, versions, budget, language)
    else:
        reply = _call(query, groups, budget, language)
    reply.total_ms = round((time.perf_counter() - started) * 1000, 2)
    if not reply.ok:
        # DEBUG: the caller logs one line per search or rerank call, with this status.
        logger.debug("rerank fell back to full-text order (%s): %s", reply.status, reply.notice)
    return reply


def _call_cached(
    query: str, groups: list[list[str]], versions: list[str], budget: float, language: str | None
) -> RerankReply:
    keys = rerank_cache.entry_keys(query, groups, versions)
    hits, model = rerank_cache.lookup(keys)
    if model is None:
        hits = {}
    missing = [i for i, key in enumerate(keys) if key not in hits]
    if not missing:
        return RerankReply(
            scores=[hits[key][0] for key in keys], best=[hits[key][1] for key in keys], model=model, cached=len(keys)
        )
    reply = _call(query, [groups[i] for i in missing], budget, language)
    if not reply.ok:
        return reply
    fresh = {keys[i]: (score, best) for i, score, best in zip(missing, reply.scores, reply.best, strict=True)}
    rerank_cache.store(fresh, reply.model)
    merged = {**hits, **fresh}
    reply.scores = [merged[key][0] for key in keys]
    reply.best = [merged[key][1] for key in keys]
    reply.cached = len(keys) - len(missing)
    return reply


def _call(query: str, groups: list[list[str]], budget: float, language: str | None) -> RerankReply:
    try:
        result = app.send_task(
            RERANK_TASK,
            args=[query, groups, time.time(), language],
            queue=settings.RERANK_QUEUE,
            # Work nobody waits for any more is dropped, never done late (see DESIGN).
            expires=budget,
            retry=False,
        )
    except UNREACHABLE as error:
        return RerankReply(
            status="unavailable",
            notice=f"Reranking is unavailable: the task queue cannot be reached ({_reason(error)}).",
        )
    try:
        payload = result.get(timeout=budget, propagate=False, interval=0.005)
    except CeleryTimeout:
        _forget(result)
        return RerankReply(
            status="timeout",
            notice=f"The reranker did not answer within {budget:g} s (busy, or no worker running).",
        )
    except UNREACHABLE as error:
        return RerankReply(
            status="unavailable",
            notice=f"Reranking is unavailable: the result store cannot be reached ({_reason(error)}).",
        )
    _forget(result)
    if isinstance(payload, TaskRevokedError):
        # The worker drops a task whose expiry (the budget) passed before it could start it.
        return RerankReply(
            status="timeout",
            notice=f"The reranker did not answer within {budget:g} s (the task expired before a worker took it).",
        )
    if result.failed() or not isinstance(payload, dict):
        return RerankReply(status="error", notice=f"The reranker failed on this query ({type(payload).__name__}).")
    if payload.get("skipped"):
        return RerankReply(
            status="skipped",
            model=payload.get("model"),
            notice=f"Not reranked: {payload['skipped']}. A multilingual reranker (e.g. BAAI/bge-reranker-v2-m3) "
            "would serve it.",
        )
    if payload.get("timeout"):
        # The worker took the task but its budget ran out while it waited for the model.
        return RerankReply(
            status="timeout", notice=f"The reranker did not answer within {budget:g} s ({payload['timeout']})."
        )
    if payload.get("busy"):
        # The worker's bounded queue turned this search away at once (RERANKER_MAX_QUEUED_PAIRS).
        return RerankReply(status="busy", notice=f"The reranker is busy with other searches ({payload['busy']}).")
    if payload.get("error"):
        return RerankReply(status="error", notice=f"The reranker reported an error: {payload['error']}")
    return RerankReply(
        scores=payload["scores"],
        best=payload["best"],
        model=payload["model"],
        queue_ms=payload.get("queue_ms"),
        model_ms=payload.get("model_ms"),
    )


def _reason(error: Exception) -> str:
    """Return the name of the underlying error (Celery wraps Redis's in RuntimeError)."""
    return type(error.__cause__ if isinstance(error, RuntimeError) and error.__cause__ else error).__name__


def _forget(result: object) -> None:
    with contextlib.suppress(*UNREACHABLE):
        result.forget()


def worker_status(*, timeout: float = 2.0) -> dict:
    """Return the worker's model info, or {"ready": False, "problem": ...} (network: Redis)."""
    try:
        result = app.send_task(STATUS_TASK, queue=settings.RERANK_QUEUE, expires=timeout, retry=False)
        payload = result.get(timeout=timeout, propagate=False, interval=0.01)
        _forget(result)
    except CeleryTimeout:
        return {"ready": False, "problem": f"no rerank worker answered within {timeout:g} s"}
    except UNREACHABLE as error:
        return {"ready": False, "problem": f"the task queue cannot be reached ({_reason(error)})"}
    return payload if isinstance(payload, dict) else {"ready": False, "problem": "unexpected reply"}
