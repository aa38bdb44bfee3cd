"""Celery tasks of the rerank worker: thin wrappers around worker.batching / worker.reranker.

The model is loaded once per worker process, never per task: at worker_init for the threads pool
(`-P threads -c N`, the default: task threads submit to one batching thread that owns the model,
so concurrent searches share forward passes), at worker_process_init for solo / prefork children.

A model with chunk vectors (packaged-e5-fp32, packaged-e5) opens its vector store
(worker.vectors: PostgreSQL for library chunks, through plain SQL); beside a cross-encoder the
embedding model EMBEDDING_MODEL (default packaged-e5-fp32) is loaded as well and keeps the
vectors. Either takes `embed` tasks (a nudge: chunks without a vector wait in PostgreSQL) and
`embed_query` tasks (the query's vector, for the semantic candidates). Every worker writes a
heartbeat to Redis every 2 s (what it serves, how much waits in it), so a search that times out can
tell a slow worker from a missing one (search.worker_client).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from datetime import datetime

import numpy as np
from celery import shared_task
from celery.signals import worker_init, worker_process_init
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from worker import protocol
from worker.batching import BatchingReranker, CallerGone, ModelFailed, Overloaded
from worker.protocol import WorkerReply
from worker.reranker import ModelUnavailable, load_configured, load_model
from worker.vectors import ChunkVectors

logger = logging.getLogger(__name__)


# Padded tokens per forward pass when RERANKER_BATCH_TOKENS is 0 (see docs/benchmarks.md).
CPU_BATCH_TOKENS = 2048
GPU_BATCH_TOKENS = 16384
# Seconds a task waits for its scores when the message carries no expiry.
DEFAULT_WAIT_SECONDS = 60.0
# The embed task's notice of new chunks can be lost (Redis away during an import, a web sending to
# another queue): while the heartbeat's counts show chunks without a vector, the background
# embedding is woken at most this often, so none waits for the next notice or a restart.
BACKLOG_NUDGE_SECONDS = 30.0
_BEAT_LOCK = threading.Lock()


class _State:
    reranker: BatchingReranker | None = None
    vectors: ChunkVectors | None = None  # the chunk vectors of the model that embeds (see embedder)
    scores_from_vectors: bool = False  # the reranker is that model (a bi-encoder): it scores from them
    problem: str = "the model has not been loaded yet"
    loading: bool = False
    heartbeat: threading.Thread | None = None
    nudged_at: float = 0.0  # time.monotonic() of the last wake for chunks left without a vector


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
        embedding = loaded if loaded.info.vectors else _load_embedding_model()
        if embedding is not None:
            vectors = ChunkVectors(
                settings.RERANKER_VECTORS_PATH,
                model_id=embedding.info.vectors,
                encoder=embedding.model,
                dimension=embedding.model.dimension,
                on_the_spot_texts=settings.RERANKER_ON_THE_SPOT_TEXTS,
                database=connection,
            )
            counts = vectors.counts()
            logger.info(
                "chunk vectors (%s) in PostgreSQL (%s path), loose texts in %s: %d stored, %d pending",
                embedding.info.vectors,
                _vector_path(),
                settings.RERANKER_VECTORS_PATH,
                counts["stored"],
                counts["pending"],
            )
        _State.scores_from_vectors = embedding is loaded
        reranker = BatchingReranker(
            loaded,
            max_batch_tokens=settings.RERANKER_BATCH_TOKENS or default_batch_tokens(loaded.info.device),
            max_batch_pairs=settings.RERANKER_BATCH_SIZE,
            max_queued_pairs=settings.RERANKER_MAX_QUEUED_PAIRS,
            gather_ms=settings.RERANKER_GATHER_MS,
            vectors=vectors if embedding is loaded else None,
            embedder=vectors,
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


def _load_embedding_model():
    """Return EMBEDDING_MODEL loaded beside a cross-encoder (it finds, the cross-encoder reranks), or None."""
    name = getattr(settings, "EMBEDDING_MODEL", "")
    if not name or name == "none":
        return None
    try:
        embedding = load_model(
            name, device=settings.RERANKER_DEVICE, max_length=settings.RERANKER_MAX_LENGTH, batch_size=32
        )
    except ModelUnavailable as error:
        logger.error("embedding model %s cannot be loaded; no semantic candidates: %s", name, error)
        return None
    if not embedding.info.vectors:
        logger.error("EMBEDDING_MODEL=%s keeps no chunk vectors; no semantic candidates", name)
        return None
    logger.info("embedding model loaded beside the reranker: %s", embedding.info.label or embedding.info.model)
    return embedding


def _vector_path() -> str:
    from worker import chunk_store

    try:
        return chunk_store.vector_path(connection)
    except Exception as error:  # no table yet (migrations not run) or PostgreSQL away
        return f"unknown: {type(error).__name__}"


@shared_task(name=protocol.RERANK_TASK, bind=True)
def rerank(
    self,
    query: str,
    groups: list[list[str]],
    sent_at: float | None = None,
    language: str | None = None,
    lane: str = protocol.PAGE,
    chunk_ids: list[list[int | None]] | None = None,
    query_vector: dict | None = None,
) -> dict:
    """Return scores for each group of texts (max over the group) and the winning text's index.

    `chunk_ids` (one list per group, None for a text that is no library chunk) lets a bi-encoder
    read the chunks' vectors from PostgreSQL; `query_vector` ({"model", "vector"}: what
    embed_query returned) is used instead of embedding the query again when its model is this one.

    The result is a worker.protocol.WorkerReply as JSON. A query in a language the model does not
    serve is not scored (status "skipped"). Waits for the batching thread at most until the
    task's expiry (the caller's budget); `lane` "page" (a result page, and callers that do not
    say) is served before "api" (search.worker_client names it for every call). Logs one line.
    """
    started = time.perf_counter()
    reply = _rerank(self.request.expires, query, groups, sent_at, language, lane, chunk_ids, query_vector)
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
    expires: object,
    query: str,
    groups: list[list[str]],
    sent_at: float | None,
    language: str | None,
    lane: str,
    chunk_ids: list[list[int | None]] | None = None,
    query_vector: dict | None = None,
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
            query,
            groups,
            deadline=_deadline(expires, received),
            lane=lane if lane in protocol.LANES else protocol.PAGE,
            chunk_ids=chunk_ids if isinstance(chunk_ids, list) and len(chunk_ids) == len(groups) else None,
            query_vector=_own_query_vector(query_vector),
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
        if _State.scores_from_vectors
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


def _own_query_vector(payload: object) -> object:
    """Return the query's vector from the caller when the model that made it is the one that scores."""
    if not _State.scores_from_vectors or _State.vectors is None or not isinstance(payload, dict):
        return None
    vector = payload.get("vector")
    if payload.get("model") != _State.vectors.model_id or not isinstance(vector, list):
        return None
    if len(vector) != _State.vectors.dimension:
        return None
    return np.asarray(vector, dtype=np.float32)


@shared_task(name=protocol.EMBED_TASK)
def embed(texts: list[str] | None = None) -> dict:
    """Tell the worker that documents were written: the batching thread then embeds, when no
    search waits, the chunks PostgreSQL has no vector of yet (their texts are read from there).

    Returns at once: {"queued": chunks waiting} or {"skipped": why} when no model here keeps vectors.
    `texts` (what a web of the SQLite era sent) is not needed any more and is ignored.
    """
    if _State.vectors is None or _State.reranker is None:
        model = _State.reranker.info.model if _State.reranker is not None else "no model"
        return {"skipped": f"{model} keeps no chunk vectors and no EMBEDDING_MODEL is loaded"}
    _State.nudged_at = time.monotonic()
    _State.reranker.notify_background()
    return {"queued": _State.vectors.library_counts(fresh=True)["pending"]}


@shared_task(name=protocol.EMBED_QUERY_TASK)
def embed_query(query: str) -> dict:
    """Return the query's vector by the embedding model (a protocol.QueryVector as JSON).

    Runs in the task's own thread; the model is shared with the batching thread under a lock
    (a background step holds it for a fraction of a second at most).
    """
    if _State.vectors is None:
        return protocol.QueryVector(skipped="no embedding model is loaded in this worker").as_message()
    started = time.perf_counter()
    try:
        vector = _State.vectors.embed_query(str(query))
    except Exception as error:  # a model error: the search goes on with the full-text candidates
        logger.warning("embed_query failed: %s: %s", type(error).__name__, error)
        return protocol.QueryVector(skipped=f"the embedding model failed ({type(error).__name__})").as_message()
    return protocol.QueryVector(
        model=_State.vectors.model_id,
        vector=[round(float(v), 7) for v in vector],
        ms=round((time.perf_counter() - started) * 1000, 2),
    ).as_message()


@shared_task(name=protocol.STATUS_TASK)
def status() -> dict:
    """Return what the worker serves: model info (and its chunk vectors), or why it serves none
    (a protocol.WorkerStatus as JSON)."""
    if _State.reranker is None:
        return protocol.WorkerStatus(ready=False, problem=_State.problem, loading=_State.loading).as_message()
    vectors = protocol.VectorCounts(**_State.vectors.counts()) if _State.vectors is not None else None
    embedder = _State.vectors.model_id if _State.vectors is not None else ""
    return protocol.WorkerStatus(
        ready=True, model=_State.reranker.info, vectors=vectors, embedder=embedder
    ).as_message()


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
        embedder=_State.vectors.model_id if reranker is not None and _State.vectors is not None else "",
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


def _nudge_backlog() -> None:
    """Wake the background embedding when chunks wait without a vector and no wake came for
    BACKLOG_NUDGE_SECONDS (SQL: the library's counts, at most every vectors.COUNTS_SECONDS)."""
    reranker, vectors = _State.reranker, _State.vectors
    if reranker is None or vectors is None or time.monotonic() - _State.nudged_at < BACKLOG_NUDGE_SECONDS:
        return
    try:
        pending = vectors.counts()["pending"]
    except Exception as error:  # a locked store: the next beat looks again
        logger.debug("backlog not counted: %s", error)
        return
    if pending:
        _State.nudged_at = time.monotonic()
        reranker.notify_background()


def _start_heartbeat() -> None:
    if _State.heartbeat is not None:
        return

    def beats() -> None:
        while True:
            _beat()
            _nudge_backlog()
            time.sleep(protocol.HEARTBEAT_SECONDS)

    _State.heartbeat = threading.Thread(target=beats, name="rerank-heartbeat", daemon=True)
    _State.heartbeat.start()
