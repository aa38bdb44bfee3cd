"""Take the packed postings of very common terms afresh (search.models.Bm25Pack).

Queries of several very common terms are scored from these packs (search.backends.packed).
Documents written after the packs were taken are read live, up to SEARCH_PACK_CHANGES of them.
The site takes the packs again by itself after SEARCH_PACK_REFRESH writes, and
`reindex_documents` takes them too; this command takes them now (after an import that bypassed
the document services, or with SEARCH_PACK_REFRESH=0).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from search.backends import get_backend


class Command(BaseCommand):
    help = "Pack the postings of terms in at least SEARCH_PACK_MIN_DF documents (one collection, or all)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--collection", help="only this collection (default: every collection)")

    def handle(self, *args: object, **options: object) -> None:
        backend = get_backend()
        if not hasattr(backend, "pack"):
            self.stdout.write(f"pack_postings: {settings.SEARCH_BACKEND} keeps no packs; nothing to do")
            return
        started = time.perf_counter()
        packed = backend.pack(collection=options["collection"])
        took = time.perf_counter() - started
        least = settings.SEARCH_PACK_MIN_DF
        for name, terms in packed.items():
            self.stdout.write(f"pack_postings: {name}: {terms} terms in {least} or more documents packed")
        self.stdout.write(f"pack_postings: done in {took:.1f} s")
