"""Celery tasks of the rerank worker: thin wrappers around worker.batching / worker.reranker.

The model is loaded once per worker process, never per task: at worker_init for the threads pool
(`-P threads -c N`, the default: task threads submit to one batching thread that owns the model,
so concurrent searches share forward passes), at worker_process_init for solo / prefork children.

A model with stored chunk vectors (packaged-e5-fp32, packaged-e5) also opens its vector store
(worker.vectors) and takes `embed` tasks, and `vectors_keep` / `vectors_prune` from
`manage.py prune_vectors`. Every worker writes a heartbeat to Redis every 2 s (what it serves,
how much waits in it), so a search that times out can tell a slow worker from a missing one
(search.worker_client).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from datetime import datetime

from celery import shared_task
from celery.signals import worker_init, worker_process_init
from django.conf import settings
from django.core.cache import cache

from worker import protocol
from worker.batching import BatchingReranker, CallerGone, ModelFailed, Overloaded
from worker.protocol import WorkerReply
from worker.reranker import load_configured
from worker.vectors import ChunkVectors

logger = logging.getLogger(__name__)


# Padded tokens per forward pass when RERANKER_BATCH_TOKENS is 0 (see docs/benchmarks.md).
CPU_BATCH_TOKENS = 2048
GPU_BATCH_TOKENS = 16384
# Seconds a task waits for its scores when the message carries no expiry.
DEFAULT_WAIT_SECONDS = 60.0
# The task gives up this long after its expiry, so the caller (which stops waiting at the expiry)
# reports its own timeout rather than racing an error reply from here.
EXPIRY_GRACE_SECONDS = 0.25
# Seconds between two heartbeats; one older than search.worker_client.HEARTBEAT_FRESH_SECONDS
# (three beats missed) means no worker.
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_KEEP_SECONDS = 60
HEARTBEAT_PREFIX = "rerank:worker:"
_BEAT_LOCK = threading.Lock()


def heartbeat_key(queue: str) -> str:
    """Return the Redis (Django cache) key under which the workers of `queue` report in."""
    return f"{HEARTBEAT_PREFIX}{queue}"


class _State:
    reranker: BatchingReranker | None = None
    vectors: ChunkVectors | None = None
    problem: str = "the model has not been loaded yet"
    heartbeat: threading.Thread | None = None


@worker_init.connect
def load_reranker_for_threads(sender: object = None, **kwargs: object) -> None:
    """Load the model in the worker's own process when the pool is threads (nothing forks later)."""
    pool = getattr(sender, "pool_cls", None)
    if "thread" in f"{getattr(pool, '__module__', '')} {pool}":
        load_reranker()


@worker_process_init.connect
def load_reranker(**kwargs: object) -> None:
    """Load the reranker (and start its batching thread) and log what was loaded."""
    if _State.reranker is not None:
        return
    _State.problem = "still loading the model"
    _start_heartbeat()
    loaded, problem = load_configured(settings)
    reranker = None
    vectors = None
    if loaded is not None:
        if loaded.info.vectors:
            vectors = ChunkVectors(
                settings.RERANKER_VECTORS_PATH,
                model_id=loaded.info.vectors,
                encoder=loaded.model,
                dimension=loaded.model.dimension,
                on_the_spot_texts=settings.RERANKER_ON_THE_SPOT_TEXTS,
            )
            counts = vectors.counts()
            logger.info(
                "chunk vectors (%s) in %s: %d stored, %d pending",
                loaded.info.vectors,
                settings.RERANKER_VECTORS_PATH,
                counts["stored"],
                counts["pending"],
            )
        reranker = BatchingReranker(
            loaded,
            max_batch_tokens=settings.RERANKER_BATCH_TOKENS or default_batch_tokens(loaded.info.device),
            max_batch_pairs=settings.RERANKER_BATCH_SIZE,
            max_queued_pairs=settings.RERANKER_MAX_QUEUED_PAIRS,
            gather_ms=settings.RERANKER_GATHER_MS,
            vectors=vectors,
            max_api_requests=settings.RERANKER_MAX_API_REQUESTS,
        )
    _State.reranker, _State.vectors, _State.problem = reranker, vectors, problem
    _beat()  # at once: the web must not read "still loading" for 2 s after the model is ready
    if reranker is None:
        logger.error("reranker: no model loaded; every rerank answers with an error: %s", problem)
        return
    info = reranker.info
    logger.info(
        "reranker loaded: model=%s kind=%s device=%s dtype=%s max_length=%d load=%.2fs",
        info.label or info.model,
        info.kind,
        info.device,
        info.dtype,
        info.max_length,
        info.load_seconds,
    )


@shared_task(name="worker.tasks.rerank", bind=True)
def rerank(
    self,
    query: str,
    groups: list[list[str]],
    sent_at: float | None = None,
    language: str | None = None,
    lane: str = protocol.PAGE,
) -> dict:
    """Return scores for each group of texts (max over the group) and the winning text's index.

    The result is a worker.protocol.WorkerReply as JSON. A query in a language the model does not
    serve is not scored (status "skipped"). Waits for the batching thread at most until the
    task's expiry (the caller's budget); `lane` "page" (a result page, and callers that do not
    say) is served before "api" (search.worker_client names it for every call). Logs one line.
    """
    started = time.perf_counter()
    reply = _rerank(self.request.expires, query, groups, sent_at, language, lane)
    _log_rerank(query, groups, reply, lane, (time.perf_counter() - started) * 1000)
    return reply.as_message()


# Outcomes worth an operator's attention (the others are routine, at INFO).
WARNING_OUTCOMES = (protocol.ERROR, protocol.BUSY, protocol.TIMEOUT)
# Characters of an error's text in the per-rerank line (the full text is in the start-up log).
LOG_REASON_CHARS = 160


def _log_rerank(query: str, groups: list[list[str]], reply: WorkerReply, lane: str, total_ms: float) -> None:
    """Log one line per rerank: sizes, outcome, timings, model; never the query or the texts.

    Celery's own task lines (which would print the whole reply, scores and model details with
    any model-hub error among them) are turned off in settings.LOGGING.
    """
    reason = ""
    if reply.status != protocol.OK:
        text = NO_MODEL_REASON if _State.reranker is None else reply.reason
        reason = f' reason="{text[:LOG_REASON_CHARS]}"'
    model = (reply.model or {}).get("model") or (_State.reranker.info.model if _State.reranker else "-")
    logger.log(
        logging.WARNING if reply.status in WARNING_OUTCOMES else logging.INFO,
        "rerank: status=%s query_chars=%d groups=%d pairs=%d queue_ms=%s model_ms=%s batched_with=%s lane=%s "
        "total_ms=%.1f model=%s%s",
        reply.status,
        len(query),
        len(groups),
        sum(len(group) for group in groups),
        "-" if reply.queue_ms is None else reply.queue_ms,
        "-" if reply.model_ms is None else reply.model_ms,
        "-" if reply.batched_with is None else reply.batched_with,
        lane,
        total_ms,
        model,
        reason,
    )


NO_MODEL_REASON = "no model loaded (the worker's start-up log says why)"


def _rerank(
    expires: object, query: str, groups: list[list[str]], sent_at: float | None, language: str | None, lane: str
) -> WorkerReply:
    received = time.time()
    if _State.reranker is None:
        return WorkerReply(protocol.ERROR, f"the reranker has no model: {_State.problem}")
    info = _State.reranker.info
    if not _State.reranker.serves(language):
        served = ", ".join(info.languages or [])
        reason = f"{info.model} reranks only queries in: {served}; this query is {language}"
        return WorkerReply(protocol.SKIPPED, reason, model=info.as_dict())
    try:
        scored = _State.reranker.score_groups(
            query, groups, deadline=_deadline(expires, received), lane=lane if lane in protocol.LANES else protocol.PAGE
        )
    except Overloaded as error:
        # Turned away at once, so the search answers now instead of after its whole budget.
        return WorkerReply(protocol.BUSY, str(error))
    except CallerGone as error:
        return WorkerReply(protocol.TIMEOUT, str(error))
    except ModelFailed as error:
        return WorkerReply(protocol.ERROR, str(error))
    broker_ms = (received - sent_at) * 1000 if sent_at else 0.0
    unscored = set(scored.unscored)
    return WorkerReply(
        protocol.OK,
        # A group that got no score in time (no chunk vector yet) is None, and listed in "unscored".
        scores=[None if i in unscored else score for i, score in enumerate(scored.scores)],
        unscored=sorted(unscored),
        vectors={"stored": scored.stored, "embedded": scored.embedded, "missing": scored.missing}
        if _State.vectors is not None
        else None,
        best=scored.best,
        model=info.as_dict(),
        # Waiting before the model started on it: in Redis, then in the batching queue.
        queue_ms=round(broker_ms + scored.queue_ms, 2) if sent_at else scored.queue_ms,
        model_ms=scored.model_ms,
        pairs=sum(len(group) for group in groups),
        batched_with=scored.window_requests - 1,
    )


def default_batch_tokens(device: str) -> int:
    """Return the token budget of one pass: GPUs want big passes, CPUs short interruptions."""
    return GPU_BATCH_TOKENS if device.startswith("cuda") else CPU_BATCH_TOKENS


def _deadline(expires: object, received: float) -> float:
    """Return the monotonic time after which the caller no longer waits (the task's expiry)."""
    seconds = DEFAULT_WAIT_SECONDS
    if isinstance(expires, str):
        with contextlib.suppress(ValueError):
            seconds = datetime.fromisoformat(expires).timestamp() - received
    elif isinstance(expires, datetime):
        seconds = expires.timestamp() - received
    return time.monotonic() + max(0.0, seconds) + EXPIRY_GRACE_SECONDS


@shared_task(name="worker.tasks.embed")
def embed(texts: list[str]) -> dict:
    """Queue chunk texts for embedding (the batching thread embeds them when no search waits).

    Returns at once: {"queued": new texts} or {"skipped": why} when this worker's model keeps no
    vectors (a cross-encoder reads query and text together; there is nothing to precompute).
    """
    if _State.vectors is None or _State.reranker is None:
        model = _State.reranker.info.model if _State.reranker is not None else "no model"
        return {"skipped": f"{model} keeps no chunk vectors"}
    added = _State.vectors.queue([str(text) for text in texts])
    if added:
        _State.reranker.notify_background()
    return {"queued": added}


@shared_task(name="worker.tasks.vectors_keep")
def vectors_keep(token: str, keys: list[str]) -> dict:
    """Record chunk-vector keys as live for the prune pass `token` (`manage.py prune_vectors`).

    Returns {"kept": n, "at": this worker's clock}: the pass's first call, with no keys, tells
    the web when the pass began on the worker's own clock. {"skipped": why} without a store.
    """
    if _State.vectors is None:
        return {"skipped": "this worker's model keeps no chunk vectors"}
    return {"kept": _State.vectors.keep(str(token), [str(key) for key in keys]), "at": time.time()}


@shared_task(name="worker.tasks.vectors_prune")
def vectors_prune(token: str, since: float) -> dict:
    """Delete the vectors pass `token` did not keep and that were stored before `since`."""
    if _State.vectors is None:
        return {"skipped": "this worker's model keeps no chunk vectors"}
    return _State.vectors.prune(str(token), since=float(since))


@shared_task(name="worker.tasks.status")
def status() -> dict:
    """Return what the worker serves: model info (and its chunk vectors), or why it serves none."""
    if _State.reranker is None:
        return {"ready": False, "problem": _State.problem}
    reply = {"ready": True, "model": _State.reranker.info.as_dict()}
    if _State.vectors is not None:
        reply["vectors"] = _State.vectors.counts()
    return reply


def heartbeat_payload() -> dict:
    """Return what this worker reports every few seconds: what it serves and what waits in it."""
    reranker = _State.reranker
    payload = {
        "at": time.time(),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "ready": reranker is not None,
        "problem": _State.problem if reranker is None else "",
        "model": reranker.info.as_dict() if reranker is not None else None,
        "queued_pairs": reranker.queued_pairs() if reranker is not None else 0,
    }
    if _State.vectors is not None:
        with contextlib.suppress(Exception):  # a locked store must not stop the heartbeat
            payload["vectors"] = _State.vectors.counts()
    return payload


def _beat() -> None:
    """Write this worker's heartbeat to Redis (a failure is logged at debug: the next beat retries)."""
    try:
        with _BEAT_LOCK:  # a beat computed before the model was ready never lands after the one after
            cache.set(heartbeat_key(settings.RERANK_QUEUE), heartbeat_payload(), timeout=HEARTBEAT_KEEP_SECONDS)
    except Exception as error:  # Redis away
        logger.debug("heartbeat not written: %s", error)


def _start_heartbeat() -> None:
    if _State.heartbeat is not None:
        return

    def beats() -> None:
        while True:
            _beat()
            time.sleep(HEARTBEAT_SECONDS)

    _State.heartbeat = threading.Thread(target=beats, name="rerank-heartbeat", daemon=True)
    _State.heartbeat.start()
