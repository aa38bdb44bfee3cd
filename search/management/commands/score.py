"""Score one (query, document) pair through the real rerank worker, like a demo script."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from search import worker_client


class Command(BaseCommand):
    help = "Print the rerank worker's score for a query and a document text (network: Redis, the worker)."

    def add_arguments(self, parser):
        parser.add_argument("query")
        parser.add_argument("document", help="the document text to score against the query")
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            help=f"seconds to wait for the worker (default RERANK_TIMEOUT, now {settings.RERANK_TIMEOUT:g})",
        )

    def handle(self, *args: object, **options: object) -> None:
        reply = worker_client.rerank(options["query"], [[options["document"]]], timeout=options["timeout"])
        if not reply.ok:
            # CommandError: the message on stderr, exit code 1.
            raise CommandError(f"{reply.notice} Is a rerank worker running on queue {settings.RERANK_QUEUE!r}?")
        model = reply.model
        self.stdout.write(f"score: {reply.scores[0]:.6f}")
        if model is not None:
            self.stdout.write(f"model: {model.model} ({model.kind}, {model.device})")
            if model.is_fallback:
                self.stdout.write(f"note: serving a fallback model; {model.requested} failed to load")
