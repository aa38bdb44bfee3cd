"""Rebuild every document's segmented search text, vector, chunks and the search index built on them."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from documents import index_hooks
from documents.models import Document
from documents.services import documents_reindex

# Documents per transaction: each batch holds its bodies in memory once.
DEFAULT_BATCH_SIZE = 200


class Command(BaseCommand):
    help = "Re-segment, re-index and re-chunk documents (all, or one collection), in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--collection", help="only this collection (default: every collection)")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="documents per transaction")

    def handle(self, *args: object, **options: object) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        documents = Document.objects.order_by("pk").only("pk", "title", "body")
        if options["collection"]:
            documents = documents.filter(collection=options["collection"])
        total = documents.count()
        done = 0
        last_pk = 0
        # tqdm writes carriage returns itself; Django's stderr wrapper would add newlines.
        with tqdm(total=total, unit="doc", desc="reindexing", file=self.stderr._out) as bar:
            while True:
                # Keyset pagination: each batch starts after the last primary key seen.
                batch = list(documents.filter(pk__gt=last_pk)[: options["batch_size"]])
                if not batch:
                    break
                done += documents_reindex(documents=batch)
                last_pk = batch[-1].pk
                bar.update(len(batch))
        where = f"collection {options['collection']!r}" if options["collection"] else "all collections"
        self.stdout.write(f"reindexed {done} documents in {where}")
        # Statistics and the like are rebuilt whole, with the current settings.
        for report in index_hooks.rebuild(collection=options["collection"]):
            self.stdout.write(report)
