"""Show the worker's chunk-vector progress (packaged-e5) until nothing is left to embed."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from search.vectors import vectors_progress

# A bulk import on 2 cores embeds a few texts a second: allow an hour by default.
DEFAULT_TIMEOUT_SECONDS = 3600.0


class Command(BaseCommand):
    help = "Print a progress line every few seconds until the rerank worker has embedded every queued chunk text."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait at most")

    def handle(self, *args: object, **options: object) -> None:
        beat = vectors_progress(write=self.stdout.write, timeout=options["timeout"])
        if beat is None:
            self.stdout.write("no rerank worker has reported in (is one running on RERANK_QUEUE?)")
        elif beat.model is None or not beat.model.vectors:
            served = beat.model.model if beat.model else "no model"
            self.stdout.write(f"the worker serves {served}: it keeps no chunk vectors")
