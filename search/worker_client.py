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
from django.core.cache import cache
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from search import rerank_cache
from searchsite.celery import app
from worker import protocol
from worker.protocol import WorkerReply

logger = logging.getLogger(__name__)

# What "Redis cannot be reached" looks like. Celery's Redis result consumer turns a failed
# reconnect into RuntimeError("... must be restarted"); it does reconnect on the next call.
UNREACHABLE = (KombuError, RedisError, OSError, RuntimeError)

RERANK_TASK = "worker.tasks.rerank"
STATUS_TASK = "worker.tasks.status"
# The worker's heartbeat (worker.tasks): written every 2 s; older than this, nobody is there.
HEARTBEAT_PREFIX = "rerank:worker:"
HEARTBEAT_FRESH_SECONDS = 6.0
# Seconds between two looks at the result channel while a search waits for its scores.
RESULT_POLL_SECONDS = 0.05


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
    unscored: list[int] = field(default_factory=list)  # groups the model could not score in time
    vectors: dict | None = None  # chunk vectors: stored / embedded on the spot / missing

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
    lane: str = protocol.API,
) -> RerankReply:
    """Return the worker's scores for `groups`, or a reply with a notice (network: Redis).

    `language` ("en", "zh", "mixed") lets the worker skip queries its model does not serve.
    With `versions` (each group's document content version) scores are cached in Redis and only
    the groups not cached go to the worker (one more Redis round trip). `lane` "page" (a result
    page a person waits for) is served by the worker before "api" work.
    """
    budget = settings.RERANK_TIMEOUT if timeout is None else timeout
    started = time.perf_counter()
    if versions is not None and rerank_cache.enabled():
        reply = _call_cached(query, groups, versions, budget, language, lane)
    else:
        reply = _call(query, groups, budget, language, lane)
    reply.total_ms = round((time.perf_counter() - started) * 1000, 2)
    if not reply.ok:
        # DEBUG: the caller logs one line per search or rerank call, with this status.
        logger.debug("rerank fell back to full-text order (%s): %s", reply.status, reply.notice)
    return reply


def _call_cached(
    query: str, groups: list[list[str]], versions: list[str], budget: float, language: str | None, lane: str
) -> RerankReply:
    served = rerank_cache.served_model()
    keys = rerank_cache.entry_keys(query, groups, versions, model=served) if served else []
    hits = rerank_cache.lookup(keys) if served else {}
    missing = [i for i, key in enumerate(keys) if key not in hits] if served else list(range(len(groups)))
    if served and not missing:
        return RerankReply(
            scores=[hits[key][0] for key in keys], best=[hits[key][1] for key in keys], model=served, cached=len(keys)
        )
    reply = _call(query, [groups[i] for i in missing], budget, language, lane)
    if not reply.ok:
        return reply
    if hits and not rerank_cache.same_model(served, reply.model):
        # The worker switched models since its last heartbeat: score every group with the new one.
        reply = _call(query, groups, budget, language, lane)
        if not reply.ok:
            return reply
        hits, missing = {}, list(range(len(groups)))
    keys = rerank_cache.entry_keys(query, groups, versions, model=reply.model)
    unscored = {missing[i] for i in reply.unscored}
    fresh = {
        keys[i]: (score, best)
        for i, score, best in zip(missing, reply.scores, reply.best, strict=True)
        if i not in unscored  # a group without a score yet is asked again next time
    }
    rerank_cache.store(fresh, reply.model)
    merged = {**hits, **fresh}
    reply.scores = [merged[key][0] if key in merged else None for key in keys]
    reply.best = [merged[key][1] if key in merged else -1 for key in keys]
    reply.unscored = sorted(unscored)
    reply.cached = len(keys) - len(missing)
    return reply


# What the page and the API say for each outcome that is not a score: (status, notice template).
# `reason` is the worker's or the transport's own words; `budget` the seconds waited.
NOTICES = {
    "unreachable": ("unavailable", "Reranking is unavailable: {reason}."),
    "timeout": ("timeout", "The reranker did not answer within {budget:g} s ({reason})."),
    "busy": ("busy", "The reranker is busy with other searches ({reason})."),
    "error": ("error", "The reranker reported an error: {reason}"),
    "failed": ("error", "The reranker failed on this query ({reason})."),
    "skipped": (
        "skipped",
        "Not reranked: {reason}. A reranker for that language (e.g. BAAI/bge-reranker-v2-m3, multilingual) "
        "would serve it.",
    ),
}


def _notice(outcome: str, reason: str, budget: float, model: dict | None = None) -> RerankReply:
    status, template = NOTICES[outcome]
    return RerankReply(status=status, model=model, notice=template.format(reason=reason, budget=budget))


def _call(query: str, groups: list[list[str]], budget: float, language: str | None, lane: str) -> RerankReply:
    try:
        result = app.send_task(
            RERANK_TASK,
            args=[query, groups, time.time(), language, lane],
            queue=settings.RERANK_QUEUE,
            # Work nobody waits for any more is dropped, never done late (see DESIGN).
            expires=budget,
            retry=False,
        )
    except UNREACHABLE as error:
        return _notice("unreachable", f"the task queue cannot be reached ({_reason(error)})", budget)
    try:
        payload = _wait(result, budget)
    except CeleryTimeout:
        _forget(result)
        return _notice("timeout", timeout_reason(), budget)
    except UNREACHABLE as error:
        return _notice("unreachable", f"the result store cannot be reached ({_reason(error)})", budget)
    _forget(result)
    if isinstance(payload, TaskRevokedError):
        # The worker drops a task whose expiry (the budget) passed before it could start it.
        return _notice("timeout", f"the task expired before a worker took it; {timeout_reason()}", budget)
    if result.failed():
        return _notice("failed", type(payload).__name__, budget)
    try:
        reply = WorkerReply.from_message(payload)
    except ValueError:
        return _notice("failed", f"unexpected reply: {type(payload).__name__}", budget)
    if reply.status != protocol.OK:
        # skipped: a language the model does not serve; timeout: the task's budget ran out in the
        # worker's queue; busy: the worker's bounded queue turned it away at once.
        return _notice(reply.status, reply.reason, budget, model=reply.model if reply.status == "skipped" else None)
    return RerankReply(
        scores=reply.scores,
        best=reply.best,
        model=reply.model,
        queue_ms=reply.queue_ms,
        model_ms=reply.model_ms,
        unscored=list(reply.unscored),
        vectors=reply.vectors,
    )


def _wait(result: object, budget: float) -> object:
    """Return the task's result, waiting at most `budget` seconds (raises Celery's TimeoutError).

    Celery's `result.get(timeout=...)` waits on the result channel in steps of a second whatever
    its timeout (its result consumer's drainer is not handed the interval), so a 3 s budget could
    last 4 s and a 0.2 s one a second. The drainer is asked directly, in short steps; a backend
    without one (not Redis) falls back to `get`.
    """
    backend = result.backend
    drainer = getattr(getattr(backend, "result_consumer", None), "drainer", None)
    if drainer is None or not hasattr(backend, "add_pending_result"):
        return result.get(timeout=budget, propagate=False, interval=RESULT_POLL_SECONDS)
    backend.add_pending_result(result)
    try:
        for _ in drainer.drain_events_until(result.on_ready, timeout=budget, interval=min(RESULT_POLL_SECONDS, budget)):
            pass
    except TimeoutError as error:  # socket.timeout, raised by the drainer
        raise CeleryTimeout(f"no result within {budget:g} s") from error
    return result.maybe_throw(propagate=False)


def worker_heartbeat(queue: str | None = None) -> dict | None:
    """Return the last fresh heartbeat of a worker on `queue` (default: the rerank queue), else None."""
    try:
        beat = cache.get(f"{HEARTBEAT_PREFIX}{queue or settings.RERANK_QUEUE}")
    except UNREACHABLE:
        return None
    if not isinstance(beat, dict) or time.time() - float(beat.get("at", 0)) > HEARTBEAT_FRESH_SECONDS:
        return None
    return beat


def queue_length(queue: str | None = None) -> int | None:
    """Return how many tasks wait in Redis for a worker on `queue`, None when unknown (network: Redis)."""
    try:
        with app.connection_for_write() as connection:
            return int(connection.default_channel.client.llen(queue or settings.RERANK_QUEUE))
    except Exception:  # any transport trouble: unknown, the notice then says less
        return None


def timeout_reason() -> str:
    """Return what a timeout most likely was, from the worker's heartbeat and the queue in Redis."""
    beat = worker_heartbeat()
    waiting = queue_length()
    in_redis = f"; {waiting} tasks waiting in Redis" if waiting else ""
    if beat is None:
        return f"no rerank worker has reported in for {HEARTBEAT_FRESH_SECONDS:g} s: none is running{in_redis}"
    ago = max(0.0, time.time() - float(beat.get("at", 0)))
    if not beat.get("ready"):
        return f"a rerank worker reported in {ago:.0f} s ago but serves no model yet ({beat.get('problem')}){in_redis}"
    pending = (beat.get("vectors") or {}).get("pending", 0)
    embedding = f", {pending} chunk texts still to embed" if pending else ""
    return (
        f"a rerank worker reported in {ago:.0f} s ago: it is up but slow, {beat.get('queued_pairs', 0)} pairs were "
        f"waiting in it{embedding}{in_redis}"
    )


def _reason(error: Exception) -> str:
    """Return the name of the underlying error (Celery wraps Redis's in RuntimeError)."""
    return type(error.__cause__ if isinstance(error, RuntimeError) and error.__cause__ else error).__name__


def _forget(result: object) -> None:
    with contextlib.suppress(*UNREACHABLE):
        result.forget()


def ask_worker(task: str, *args: object, timeout: float) -> dict:
    """Send `task` to the rerank worker and return its answer (network: Redis; raises CeleryTimeout)."""
    result = app.send_task(task, args=list(args), queue=settings.RERANK_QUEUE, retry=False, expires=timeout)
    try:
        return result.get(timeout=timeout, interval=0.05)
    finally:
        _forget(result)


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
