"""Load the project's bilingual sample library (documents/sample_library/library.jsonl)."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand

from documents.models import LIBRARY, Document
from documents.services import DocumentInput, documents_import

SAMPLE_LIBRARY = Path(__file__).resolve().parents[2] / "sample_library" / "library.jsonl"


def sample_items(path: Path = SAMPLE_LIBRARY) -> list[DocumentInput]:
    """Return the sample library's documents (reads one file)."""
    items = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            items.append(
                DocumentInput(
                    title=record["title"],
                    body=record["content"],
                    language=record.get("language"),
                    source=record.get("source", "sample-library"),
                    external_id=record["id"],
                    metadata={"topic": record.get("topic", "")},
                )
            )
    return items


class Command(BaseCommand):
    help = "Load the bilingual sample library into the site's library."

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", help="only when the library has no documents")

    def handle(self, *args: object, **options: object) -> None:
        if options["if_empty"] and Document.objects.filter(collection=LIBRARY).exists():
            return
        outcome = documents_import(items=sample_items())
        self.stdout.write(
            f"sample library: created {outcome.created}, updated {outcome.updated}, skipped "
            f"{outcome.unchanged} unchanged and {outcome.duplicates} duplicates, rejected {len(outcome.rejected)}"
        )
        for line in outcome.rejected:
            self.stderr.write(f"  rejected {line}")
