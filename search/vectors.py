"""The web's side of chunk vectors: after documents are written, tell the worker there are chunks to embed.

A chunk's vector is computed once, by the worker's embedding model, in the background, and kept in
PostgreSQL beside the chunk (search_chunkvector, worker.chunk_store): the worker reads the chunks
without a vector from there, so this module sends only a nudge (`worker.tasks.embed`). A chunk
that goes takes its vectors with it (ON DELETE CASCADE), so nothing is sent for deletes and no
prune is needed. Nothing is sent when the worker reports no embedding model.
"""

from __future__ import annotations

import logging
import time

from django.db.models import Count

from documents.models import Document
from search.worker_client import UNREACHABLE, send_texts_to_embed, worker_heartbeat
from worker.protocol import Heartbeat, VectorCounts

logger = logging.getLogger(__name__)


class _Sent:
    texts = 0  # chunks announced by this process (reported by `rebuild_hook`)


def worker_keeps_vectors() -> bool | None:
    """Return whether the worker that reported in has an embedding model; None when none reported."""
    beat = worker_heartbeat()
    if beat is None or beat.model is None:
        return None
    return bool(beat.embedder)


def vectors_send(*, document_ids: list[int], queue: str | None = None) -> int:
    """Tell the worker these documents' chunks wait for vectors; return how many texts they are
    (each chunk, or the title of a document without chunks). Network: Redis; SQL: one count."""
    counts = dict(
        Document.objects.filter(pk__in=document_ids)
        .annotate(chunk_count=Count("chunks"))
        .values_list("pk", "chunk_count")
    )
    texts = sum(count or 1 for count in counts.values())
    send_texts_to_embed([], queue=queue)
    _Sent.texts += texts
    return texts


def index_hook(*, changed: list[int], deleted: list[int], collection: str | None) -> None:
    """The DOCUMENTS_INDEX_HOOKS entry: tell the worker the changed documents' chunks need vectors.

    Deleted documents need nothing: their vectors went with their chunks. Redis trouble is
    logged; the chunks are then embedded at search time, or when the worker is next nudged.
    """
    if not changed or worker_keeps_vectors() is False:
        return
    try:
        vectors_send(document_ids=changed)
    except UNREACHABLE as error:
        logger.warning(
            "chunk vectors: could not tell the worker about %d documents (%s); they are embedded at search time",
            len(changed),
            type(error).__name__,
        )


def rebuild_hook(*, collection: str | None) -> str:
    """The DOCUMENTS_REBUILD_HOOKS entry: report what was queued and where the worker stands."""
    beat = worker_heartbeat()
    if beat is None or beat.model is None:
        return (
            f"chunk vectors: {_Sent.texts} chunk texts queued; no rerank worker has reported in, "
            "so they wait in Redis for one"
        )
    model = beat.model
    if not beat.embedder:
        return f"chunk vectors: no embedding model beside {model.model} (EMBEDDING_MODEL), so no semantic candidates"
    stored, pending = (beat.vectors.stored, beat.vectors.pending) if beat.vectors else ("?", "?")
    return (
        f"chunk vectors: {_Sent.texts} chunk texts announced; {beat.embedder} has "
        f"{stored} vectors, {pending} texts still to embed "
        "(progress lines in the worker's log; `manage.py vectors_progress` waits for them)"
    )


def vectors_progress(*, write, timeout: float, poll_seconds: float = 2.0) -> Heartbeat | None:
    """Write a progress line every `poll_seconds` until the worker has no pending texts or `timeout`.

    Returns the last heartbeat (None: no worker reported in). Reads Redis only.
    """
    deadline = time.monotonic() + timeout
    first_pending = None
    beat = None
    while time.monotonic() < deadline:
        beat = worker_heartbeat()
        if beat is None or beat.model is None or not beat.embedder:
            return beat
        counts = beat.vectors or VectorCounts()
        pending = counts.pending
        first_pending = pending if first_pending is None else max(first_pending, pending)
        done = first_pending - pending
        write(f"chunk vectors: {done}/{first_pending} embedded, {pending} pending, {counts.stored} stored")
        if pending == 0:
            return beat
        time.sleep(poll_seconds)
    return beat
