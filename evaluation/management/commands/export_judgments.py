"""Write the site's judgments as a BEIR folder (queries.jsonl, qrels/test.tsv, corpus.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from documents.models import LIBRARY, Document
from evaluation import judgments

# Documents read per database round trip while the corpus is written.
CORPUS_BATCH = 500


class Command(BaseCommand):
    help = (
        "Export the judged queries and the whole library as a BEIR folder; `evaluate DIR` on it gives the "
        "figures of `evaluate --judgments` (the same judgments, the same documents)."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument("--include-public", action="store_true", help="visitors' judgments too, not only staff's")
        parser.add_argument("--include-stale", action="store_true", help="keep judgments whose document changed since")

    def handle(self, *args: object, **options: object) -> None:
        judged = judgments.judged_set(include_public=options["include_public"], include_stale=options["include_stale"])
        if not judged.queries:
            raise CommandError("no judged query with a relevant document to export")
        directory: Path = options["directory"]
        (directory / "qrels").mkdir(parents=True, exist_ok=True)
        with (directory / "queries.jsonl").open("w", encoding="utf-8") as handle:
            for query_id, text, language in judged.queries:
                handle.write(json.dumps({"_id": query_id, "text": text, "language": language}, ensure_ascii=False))
                handle.write("\n")
        with (directory / "qrels" / "test.tsv").open("w", encoding="utf-8") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            for query_id, _, _ in judged.queries:
                for corpus_id, grade in sorted(judged.qrels[query_id].items(), key=lambda item: int(item[0])):
                    handle.write(f"{query_id}\t{corpus_id}\t{grade}\n")
        # The whole library in id order: the candidates of a search depend on every document (the
        # BM25 statistics), and an import in this order keeps ties in the same order.
        written = 0
        library = Document.objects.filter(collection=LIBRARY).order_by("id")
        rows = library.values_list("id", "title", "body", "language")
        with (directory / "corpus.jsonl").open("w", encoding="utf-8") as handle:
            for pk, title, body, language in rows.iterator(chunk_size=CORPUS_BATCH):
                record = {"_id": str(pk), "title": title, "text": body, "language": language}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
        self.stdout.write(
            f"wrote {len(judged.queries)} queries, {sum(len(q) for q in judged.qrels.values())} judgments and "
            f"{written} documents to {directory} ({len(judged.stale)} stale judgments left out)"
        )
