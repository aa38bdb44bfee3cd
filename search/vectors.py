"""The web's side of chunk vectors: after documents are written, send their chunk texts to the worker.

A bi-encoder's chunk vectors (packaged-e5) are computed once, by the worker, in the background
(worker.vectors); this module only sends the exact texts the reranker will read
(search.passages.rerank_text) as `worker.tasks.embed` tasks. The worker keys each vector by model
and the text's hash, so an edited document simply gets new vectors and the old ones are never
read again. Nothing is sent when the worker reports a model without vectors (a cross-encoder).
"""

from __future__ import annotations

import logging
import time

from documents.models import Chunk, Document
from search.passages import rerank_text
from search.worker_client import UNREACHABLE, send_texts_to_embed, worker_heartbeat
from worker.protocol import Heartbeat, VectorCounts

logger = logging.getLogger(__name__)

# Texts per embed task: a message of at most a few hundred kB (chunks are ~2 kB).
TEXTS_PER_TASK = 200


class _Sent:
    texts = 0  # chunk texts sent by this process (reported by `rebuild_hook`)


def chunk_texts(document_ids: list[int]) -> list[str]:
    """Return the texts the reranker reads for these documents: each chunk with its title (one SQL query)."""
    texts: list[str] = []
    with_chunks: set[int] = set()
    rows = Chunk.objects.filter(document_id__in=document_ids).values_list("document_id", "document__title", "text")
    for document_id, title, text in rows.iterator(chunk_size=2000):
        with_chunks.add(document_id)
        texts.append(rerank_text(title, text))
    # A document without chunks is reranked by its title alone (search.services).
    missing = set(document_ids) - with_chunks
    if missing:
        texts.extend(Document.objects.filter(pk__in=missing).values_list("title", flat=True))
    return texts


def worker_keeps_vectors() -> bool | None:
    """Return whether the worker that reported in keeps chunk vectors; None when none reported."""
    beat = worker_heartbeat()
    if beat is None or beat.model is None:
        return None
    return bool(beat.model.vectors)


def vectors_send(*, document_ids: list[int], queue: str | None = None) -> int:
    """Send the documents' chunk texts to the worker to be embedded; return how many (network: Redis)."""
    texts = chunk_texts(document_ids)
    sent = 0
    for start in range(0, len(texts), TEXTS_PER_TASK):
        part = texts[start : start + TEXTS_PER_TASK]
        send_texts_to_embed(part, queue=queue)
        sent += len(part)
    _Sent.texts += sent
    return sent


def index_hook(*, changed: list[int], deleted: list[int], collection: str | None) -> None:
    """The DOCUMENTS_INDEX_HOOKS entry: queue the changed documents' chunk texts for their vectors.

    Deleted documents need nothing: their vectors are never looked up again. Redis trouble is
    logged; the texts are then embedded at search time (or by the next `reindex_documents`).
    """
    if not changed or worker_keeps_vectors() is False:
        return
    try:
        vectors_send(document_ids=changed)
    except UNREACHABLE as error:
        logger.warning(
            "chunk vectors: could not queue %d documents for the worker (%s); they are embedded at search time",
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
    if not model.vectors:
        return f"chunk vectors: not needed ({model.model} is a {model.kind})"
    stored, pending = (beat.vectors.stored, beat.vectors.pending) if beat.vectors else ("?", "?")
    return (
        f"chunk vectors: {_Sent.texts} chunk texts queued; {model.name} holds "
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
        if beat is None or beat.model is None or not beat.model.vectors:
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
