"""Queue every document's chunk texts for the worker's chunk vectors (packaged-e5).

The index hook (search.vectors) sends a document's texts when it is written; a worker whose store
lacks the library for its model (a first start, another model or engine version, a new volume)
would otherwise embed each chunk only when a search first meets it, on the spot. The worker
queues only texts it has no vector for, so running this again costs lookups, not embedding.
`make run` runs it once the worker reports in.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandParser

from documents.models import Document
from search.vectors import vectors_send, worker_keeps_vectors
from search.worker_client import UNREACHABLE

# Documents whose texts are read and sent together (a few hundred kB per embed task).
DOCUMENTS_PER_STEP = 500


class Command(BaseCommand):
    help = "Queue every document's chunk texts for the rerank worker's chunk vectors (texts it has are skipped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait", type=float, default=0.0, help="seconds to wait for a rerank worker to report in first"
        )
        parser.add_argument("--collection", help="only this collection's documents (default: all)")

    def handle(self, *args: object, **options: object) -> None:
        deadline = time.monotonic() + options["wait"]
        keeps = worker_keeps_vectors()
        while keeps is None and time.monotonic() < deadline:
            time.sleep(1.0)
            keeps = worker_keeps_vectors()
        if keeps is None:
            self.stdout.write("embed_library: no rerank worker has reported in; nothing queued")
            return
        if not keeps:
            self.stdout.write("embed_library: the worker's model keeps no chunk vectors; nothing to queue")
            return
        documents = Document.objects.order_by("pk")
        if options["collection"]:
            documents = documents.filter(collection=options["collection"])
        ids = list(documents.values_list("pk", flat=True))
        sent = 0
        try:
            for start in range(0, len(ids), DOCUMENTS_PER_STEP):
                sent += vectors_send(document_ids=ids[start : start + DOCUMENTS_PER_STEP])
        except UNREACHABLE as error:
            self.stdout.write(f"embed_library: Redis went away after {sent} texts ({type(error).__name__})")
            return
        self.stdout.write(
            f"embed_library: {sent} chunk texts of {len(ids)} documents sent; the worker embeds those it has no "
            "vector for in the background (`manage.py vectors_progress` shows how far it is)"
        )
