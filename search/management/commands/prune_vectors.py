"""Remove the worker's chunk vectors of texts no document has any more (deleted or edited documents).

A vector is keyed by the hash of the exact text the reranker reads, so an edited or deleted
document's old vectors are never read again; they only take disk. This names the key of every
live chunk text to the worker (`worker.tasks.vectors_keep`, a few thousand per task, each waited
for), then asks it to delete this model's vectors that were not named and were stored before
the pass began (`worker.tasks.vectors_prune`): a document written meanwhile keeps its vectors.
Vectors of texts sent through the rerank APIs (not documents) are removed too: they are a cache.
With several workers, every one must share the one vector file (RERANKER_VECTORS_PATH).
"""

from __future__ import annotations

import uuid

from django.core.management.base import BaseCommand, CommandError

from documents.models import Document
from search.vectors import chunk_texts, worker_keeps_vectors
from search.worker_client import NO_ANSWER, ask_worker
from worker.protocol import KEEP_TASK, PRUNE_TASK, text_key

# Documents whose chunk keys go in one task (a few hundred kB of keys at most).
DOCUMENTS_PER_STEP = 500
# Seconds to wait for each answer: the worker's task threads answer these between searches.
ASK_SECONDS = 60.0


class Command(BaseCommand):
    help = "Remove the rerank worker's chunk vectors that no document's text has any more."

    def handle(self, *args: object, **options: object) -> None:
        keeps = worker_keeps_vectors()
        if keeps is None:
            raise CommandError("no rerank worker has reported in; nothing pruned")
        if not keeps:
            self.stdout.write("prune_vectors: the worker's model keeps no chunk vectors; nothing to prune")
            return
        token = uuid.uuid4().hex
        try:
            since = self._ask(KEEP_TASK, token, [])["at"]
            ids = list(Document.objects.order_by("pk").values_list("pk", flat=True))
            kept = 0
            for start in range(0, len(ids), DOCUMENTS_PER_STEP):
                keys = sorted({text_key(text) for text in chunk_texts(ids[start : start + DOCUMENTS_PER_STEP])})
                kept += self._ask(KEEP_TASK, token, keys)["kept"]
            done = self._ask(PRUNE_TASK, token, since)
        except NO_ANSWER as error:
            # Nothing is deleted before the last step: stopping here loses no vector.
            raise CommandError(f"the worker did not answer ({type(error).__name__}); nothing pruned") from error
        self.stdout.write(
            f"prune_vectors: {done['vectors_removed']} vectors and {done['pending_removed']} pending texts removed; "
            f"the keys of {kept} chunk texts of {len(ids)} documents kept; {done['stored']} vectors stored"
        )

    @staticmethod
    def _ask(task: str, *args: object) -> dict:
        answer = ask_worker(task, *args, timeout=ASK_SECONDS)
        if "skipped" in answer:
            raise CommandError(f"prune_vectors: {answer['skipped']}")
        return answer
