"""The only web code that talks to the rerank worker: it sends work (reranks, chunk texts to
embed, status and prune requests) and reads the worker's heartbeat, all as worker.protocol types.

A rerank waits for the worker within a time budget. Whatever goes wrong (Redis down, no worker,
a model still loading, a model error, the budget spent) comes back as a protocol.WorkerReply
without scores and with a notice for the page; it never raises to the caller. A worker that the
heartbeat already shows missing, or still loading its model, is not sent the work nor waited for.
"""

from __future__ import annotations

import contextlib
import logging
import time

from celery.exceptions import TaskRevokedError
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.core.cache import cache
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from search import rerank_cache
from worker import protocol
from worker.app import app
from worker.protocol import HEARTBEAT_FRESH_SECONDS, Heartbeat, ModelInfo, WorkerReply, WorkerStatus

logger = logging.getLogger(__name__)

# What "Redis cannot be reached" looks like. Celery's Redis result consumer turns a failed
# reconnect into RuntimeError("... must be restarted"); it does reconnect on the next call.
UNREACHABLE = (KombuError, RedisError, OSError, RuntimeError)
# What ask_worker raises when no answer came: the above, or no worker answered in time.
NO_ANSWER = (CeleryTimeout, *UNREACHABLE)

# Seconds between two looks at the result channel while a search waits for its scores.
RESULT_POLL_SECONDS = 0.05


def rerank(
    query: str,
    groups: list[list[str]],
    *,
    timeout: float | None = None,
    language: str | None = None,
    versions: list[str] | None = None,
    lane: str = protocol.API,
    chunk_ids: list[list[int | None]] | None = None,
    query_vector: protocol.QueryVector | None = None,
) -> WorkerReply:
    """Return the worker's scores for `groups`, or a reply with a notice (network: Redis).

    `language` ("en", "zh", "mixed") lets the worker skip queries its model does not serve.
    With `versions` (each group's document content version) scores are cached in Redis and only
    the groups not cached go to the worker (one more Redis round trip). `lane` "page" (a result
    page a person waits for) is served by the worker before "api" work. When the queue's
    heartbeat shows no worker, or one still loading (or unable to load) its model, nothing is
    sent and the reply says so at once. `chunk_ids` (per group, None for a text that is no library
    chunk) and `query_vector` (embed_query's answer) let a bi-encoder read stored vectors and skip
    embedding the query again.
    """
    extra = {"chunk_ids": chunk_ids, "query_vector": query_vector}
    budget = settings.RERANK_TIMEOUT if timeout is None else timeout
    started = time.perf_counter()
    if versions is not None and rerank_cache.enabled():
        reply = _call_cached(query, groups, versions, budget, language, lane, extra)
    else:
        reply = _call(query, groups, budget, language, lane, extra)
    reply.total_ms = round((time.perf_counter() - started) * 1000, 2)
    if not reply.ok:
        # DEBUG: the caller logs one line per search or rerank call, with this status.
        logger.debug("rerank fell back to full-text order (%s): %s", reply.status, reply.notice)
    return reply


def _call_cached(
    query: str,
    groups: list[list[str]],
    versions: list[str],
    budget: float,
    language: str | None,
    lane: str,
    extra: dict | None = None,
) -> WorkerReply:
    served = rerank_cache.served_model()
    keys = rerank_cache.entry_keys(query, groups, versions, model=served) if served else []
    hits = rerank_cache.lookup(keys) if served else {}
    missing = [i for i, key in enumerate(keys) if key not in hits] if served else list(range(len(groups)))
    if served and not missing:
        return WorkerReply(
            protocol.OK,
            scores=[hits[key][0] for key in keys],
            best=[hits[key][1] for key in keys],
            model=served,
            cached=len(keys),
        )
    reply = _call(query, [groups[i] for i in missing], budget, language, lane, _pick(extra, missing))
    if not reply.ok:
        return reply
    if hits and not rerank_cache.same_model(served, reply.model):
        # The worker switched models since its last heartbeat: score every group with the new one.
        reply = _call(query, groups, budget, language, lane, extra)
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
    "unreachable": (protocol.UNAVAILABLE, "Reranking is unavailable: {reason}."),
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


def _notice(outcome: str, reason: str, budget: float, model: ModelInfo | None = None) -> WorkerReply:
    status, template = NOTICES[outcome]
    return WorkerReply(status, reason, model=model, notice=template.format(reason=reason, budget=budget))


def _no_worker(budget: float) -> WorkerReply | None:
    """Return the reply for a queue whose heartbeat shows no worker able to score now, else None.

    A stale heartbeat: the worker that wrote it is gone (killed, stopped by SIGSTOP, a frozen
    machine). A worker still loading its model, or one that could not load it, is answered for as
    it would answer itself. Either way nothing is sent and nothing waited for (one Redis read).
    No heartbeat at all (no worker ever reported on this queue, or Redis was emptied) proves
    nothing: the task is sent and waited for as usual.
    """
    try:
        beat = Heartbeat.from_message(cache.get(Heartbeat.key(settings.RERANK_QUEUE)))
    except UNREACHABLE as error:
        return _notice("unreachable", f"the task queue cannot be reached ({_reason(error)})", budget)
    if beat is None or (beat.ready and beat.is_fresh()):
        return None
    if not beat.is_fresh():
        return _notice("unreachable", no_worker_reason(), budget)
    if beat.loading:
        return _notice("unreachable", "the rerank worker is still loading its model", budget)
    return _notice("error", f"the reranker has no model: {beat.problem}", budget)


def no_worker_reason() -> str:
    return f"no rerank worker has reported in for {HEARTBEAT_FRESH_SECONDS:g} s: none is running"


def _pick(extra: dict | None, positions: list[int]) -> dict | None:
    """Return the extra arguments for the groups at `positions` only."""
    if not extra or extra.get("chunk_ids") is None:
        return extra
    return {**extra, "chunk_ids": [extra["chunk_ids"][i] for i in positions]}


def _call(
    query: str, groups: list[list[str]], budget: float, language: str | None, lane: str, extra: dict | None = None
) -> WorkerReply:
    if (refused := _no_worker(budget)) is not None:
        return refused
    args: list[object] = [query, groups, time.time(), language, lane]
    chunk_ids = (extra or {}).get("chunk_ids")
    vector = (extra or {}).get("query_vector")
    if chunk_ids is not None or vector is not None:
        args += [chunk_ids, vector.as_message() if vector is not None else None]
    try:
        result = app.send_task(
            protocol.RERANK_TASK,
            args=args,
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
        return _notice(
            reply.status, reply.reason, budget, model=reply.model if reply.status == protocol.SKIPPED else None
        )
    return reply


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


def worker_heartbeat(queue: str | None = None) -> Heartbeat | None:
    """Return the last fresh heartbeat of a worker on `queue` (default: the rerank queue), else None."""
    try:
        return Heartbeat.fresh(cache.get(Heartbeat.key(queue or settings.RERANK_QUEUE)))
    except UNREACHABLE:
        return None


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
        return f"{no_worker_reason()}{in_redis}"
    ago = beat.age()
    if not beat.ready:
        return f"a rerank worker reported in {ago:.0f} s ago but serves no model yet ({beat.problem}){in_redis}"
    pending = beat.vectors.pending if beat.vectors else 0
    embedding = f", {pending} chunk texts still to embed" if pending else ""
    return (
        f"a rerank worker reported in {ago:.0f} s ago: it is up but slow, {beat.queued_pairs} pairs were "
        f"waiting in it{embedding}{in_redis}"
    )


def _reason(error: Exception) -> str:
    """Return the name of the underlying error (Celery wraps Redis's in RuntimeError)."""
    return type(error.__cause__ if isinstance(error, RuntimeError) and error.__cause__ else error).__name__


def _forget(result: object) -> None:
    with contextlib.suppress(*UNREACHABLE):
        result.forget()


def ask_worker(task: str, *args: object, timeout: float) -> dict:
    """Send `task` to the rerank worker and return its answer (network: Redis; raises one of NO_ANSWER)."""
    result = app.send_task(task, args=list(args), queue=settings.RERANK_QUEUE, retry=False, expires=timeout)
    try:
        return result.get(timeout=timeout, interval=0.05)
    finally:
        _forget(result)


def send_texts_to_embed(texts: list[str], *, queue: str | None = None) -> None:
    """Queue chunk texts for the worker to embed, its answer unread (network: Redis; raises UNREACHABLE)."""
    app.send_task(
        protocol.EMBED_TASK, args=[texts], queue=queue or settings.RERANK_QUEUE, retry=False, ignore_result=True
    )


def send_embed_query(query: str):
    """Ask the worker for the query's vector and return the pending result, or None when the
    heartbeat shows no worker with an embedding model or Redis cannot be reached (network: Redis)."""
    beat = worker_heartbeat()
    if beat is None or not beat.ready or not beat.embedder:
        return None
    try:
        return app.send_task(
            protocol.EMBED_QUERY_TASK,
            args=[query],
            queue=settings.RERANK_QUEUE,
            expires=settings.SEARCH_SEMANTIC_TIMEOUT,
            retry=False,
        )
    except UNREACHABLE:
        return None


def read_query_vector(result: object, budget: float) -> protocol.QueryVector:
    """Return the query's vector the worker sent back within `budget` seconds, else one that says why not."""
    try:
        payload = _wait(result, budget)
    except CeleryTimeout:
        _forget(result)
        return protocol.QueryVector(skipped=f"the embedding model did not answer within {budget:g} s")
    except UNREACHABLE as error:
        return protocol.QueryVector(skipped=f"the result store cannot be reached ({_reason(error)})")
    _forget(result)
    if isinstance(payload, Exception):
        return protocol.QueryVector(skipped=f"the embedding task failed ({type(payload).__name__})")
    return protocol.QueryVector.from_message(payload)


def worker_status(*, timeout: float = 2.0) -> WorkerStatus:
    """Return what the worker serves, or why it serves nothing (network: Redis, a status task)."""
    try:
        result = app.send_task(protocol.STATUS_TASK, queue=settings.RERANK_QUEUE, expires=timeout, retry=False)
        payload = result.get(timeout=timeout, propagate=False, interval=0.01)
        _forget(result)
    except CeleryTimeout:
        return WorkerStatus(ready=False, problem=f"no rerank worker answered within {timeout:g} s")
    except UNREACHABLE as error:
        return WorkerStatus(ready=False, problem=f"the task queue cannot be reached ({_reason(error)})")
    return WorkerStatus.from_message(payload)
