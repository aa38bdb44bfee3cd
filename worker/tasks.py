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
_BEAT_LOCK = threading.Lock()


class _State:
    reranker: BatchingReranker | None = None
    vectors: ChunkVectors | None = None
    problem: str = "the model has not been loaded yet"
    loading: bool = False
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
    _State.problem, _State.loading = "still loading the model", True
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
    _State.reranker, _State.vectors, _State.problem, _State.loading = reranker, vectors, problem, False
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


@shared_task(name=protocol.RERANK_TASK, bind=True)
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
    model = reply.model.model if reply.model else (_State.reranker.info.model if _State.reranker else "-")
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
        return WorkerReply(protocol.SKIPPED, reason, model=info)
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
        vectors=protocol.VectorUse(stored=scored.stored, embedded=scored.embedded, missing=scored.missing)
        if _State.vectors is not None
        else None,
        best=scored.best,
        model=info,
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
    """Return the monotonic time by which the worker answers: the task's expiry (when the caller
    stops waiting) less protocol.REPLY_MARGIN_SECONDS for the reply's trip back, so an answer that
    is late or partial (`unscored`) still reaches the caller."""
    expiry = None
    if isinstance(expires, str):
        with contextlib.suppress(ValueError):
            expiry = datetime.fromisoformat(expires).timestamp()
    elif isinstance(expires, datetime):
        expiry = expires.timestamp()
    if expiry is None:
        return time.monotonic() + DEFAULT_WAIT_SECONDS
    return time.monotonic() + max(0.0, expiry - received - protocol.REPLY_MARGIN_SECONDS)


@shared_task(name=protocol.EMBED_TASK)
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


@shared_task(name=protocol.KEEP_TASK)
def vectors_keep(token: str, keys: list[str]) -> dict:
    """Record chunk-vector keys as live for the prune pass `token` (`manage.py prune_vectors`).

    Returns {"kept": n, "at": this worker's clock}: the pass's first call, with no keys, tells
    the web when the pass began on the worker's own clock. {"skipped": why} without a store.
    """
    if _State.vectors is None:
        return {"skipped": "this worker's model keeps no chunk vectors"}
    return {"kept": _State.vectors.keep(str(token), [str(key) for key in keys]), "at": time.time()}


@shared_task(name=protocol.PRUNE_TASK)
def vectors_prune(token: str, since: float) -> dict:
    """Delete the vectors pass `token` did not keep and that were stored before `since`."""
    if _State.vectors is None:
        return {"skipped": "this worker's model keeps no chunk vectors"}
    return _State.vectors.prune(str(token), since=float(since))


@shared_task(name=protocol.STATUS_TASK)
def status() -> dict:
    """Return what the worker serves: model info (and its chunk vectors), or why it serves none
    (a protocol.WorkerStatus as JSON)."""
    if _State.reranker is None:
        return protocol.WorkerStatus(ready=False, problem=_State.problem, loading=_State.loading).as_message()
    vectors = protocol.VectorCounts(**_State.vectors.counts()) if _State.vectors is not None else None
    return protocol.WorkerStatus(ready=True, model=_State.reranker.info, vectors=vectors).as_message()


def heartbeat_payload() -> dict:
    """Return what this worker reports every few seconds (a protocol.Heartbeat as JSON)."""
    reranker = _State.reranker
    vectors = None
    if _State.vectors is not None:
        with contextlib.suppress(Exception):  # a locked store must not stop the heartbeat
            vectors = protocol.VectorCounts(**_State.vectors.counts())
    return protocol.Heartbeat(
        at=time.time(),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        ready=reranker is not None,
        problem=_State.problem if reranker is None else "",
        loading=reranker is None and _State.loading,
        model=reranker.info if reranker is not None else None,
        queued_pairs=reranker.queued_pairs() if reranker is not None else 0,
        vectors=vectors,
    ).as_message()


def _beat() -> None:
    """Write this worker's heartbeat to Redis (a failure is logged at debug: the next beat retries)."""
    try:
        with _BEAT_LOCK:  # a beat computed before the model was ready never lands after the one after
            cache.set(
                protocol.Heartbeat.key(settings.RERANK_QUEUE),
                heartbeat_payload(),
                timeout=protocol.HEARTBEAT_KEEP_SECONDS,
            )
    except Exception as error:  # Redis away
        logger.debug("heartbeat not written: %s", error)


def _start_heartbeat() -> None:
    if _State.heartbeat is not None:
        return

    def beats() -> None:
        while True:
            _beat()
            time.sleep(protocol.HEARTBEAT_SECONDS)

    _State.heartbeat = threading.Thread(target=beats, name="rerank-heartbeat", daemon=True)
    _State.heartbeat.start()
