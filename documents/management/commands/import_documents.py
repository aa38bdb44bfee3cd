"""Import files and folders into a collection: txt, md, html, pdf, docx, json, jsonl (BEIR too)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from documents.ingest import DEFAULT_BATCH_SIZE, FileReport, ingest_path
from documents.models import LIBRARY
from documents.parsers import ACCEPTED_EXTENSIONS

# Per-record problems printed under a file's line before "... and N more".
MAX_PROBLEM_LINES = 10


class Command(BaseCommand):
    help = "Import documents from files and folders (recursively); one line per file and a summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
        parser.add_argument("--collection", default=LIBRARY, help=f"collection to import into (default {LIBRARY})")
        parser.add_argument(
            "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="documents per transaction in JSON files"
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        files, ignored = collect_files(options["paths"])
        if not files:
            raise CommandError("no files to import")
        # tqdm writes carriage returns itself; Django's stderr wrapper would add newlines.
        bar = tqdm(total=0, unit="doc", desc="importing", file=self.stderr._out, dynamic_ncols=True)
        reports: list[FileReport] = []
        with bar:
            for path in files:
                bar.set_postfix_str(path.name[-40:])
                report = ingest_path(
                    path,
                    collection=options["collection"],
                    batch_size=options["batch_size"],
                    progress=_advance(bar),
                )
                reports.append(report)
                bar.clear()
                self._write_report(report)
                bar.refresh()
        self.stdout.write(summary_line(reports, ignored))

    def _write_report(self, report: FileReport) -> None:
        self.stdout.write(f"{report.name}: {report.message}")
        if report.status != "partial":
            return
        for problem in report.rejected[:MAX_PROBLEM_LINES]:
            self.stdout.write(f"    rejected {problem}")
        if len(report.rejected) > MAX_PROBLEM_LINES:
            self.stdout.write(f"    ... and {len(report.rejected) - MAX_PROBLEM_LINES} more rejected")


def _advance(bar: tqdm):
    """Return a progress callback that grows the bar's total by each file's document count."""
    seen = {"done": 0, "total": 0}

    def progress(done: int, total: int) -> None:
        if total != seen["total"]:
            bar.total += total - seen["total"]
            seen["total"] = total
            bar.refresh()
        bar.update(done - seen["done"])
        seen["done"] = done

    return progress


def collect_files(paths: list[Path]) -> tuple[list[Path], int]:
    """Return the files to import and how many files in folders were left out for their type.

    A file named on the command line is always tried (and rejected when its type is unknown);
    inside folders only the accepted types are taken, hidden files and folders skipped.
    """
    files: list[Path] = []
    ignored = 0
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        for child in sorted(path.rglob("*")):
            relative = child.relative_to(path)
            if any(part.startswith(".") for part in relative.parts) or not child.is_file():
                continue
            if child.suffix.lower() in ACCEPTED_EXTENSIONS:
                files.append(child)
            else:
                ignored += 1
    return files, ignored


def summary_line(reports: list[FileReport], ignored: int = 0) -> str:
    """Return the closing line: totals over all files."""
    created = sum(report.created for report in reports)
    updated = sum(report.updated for report in reports)
    unchanged = sum(report.unchanged for report in reports)
    duplicates = sum(report.duplicates for report in reports)
    rejected_files = sum(1 for report in reports if report.status == "rejected")
    rejected_records = sum(len(report.rejected) for report in reports if report.status == "partial")
    changed = f"updated {_count(updated, 'document')}, " if updated else ""
    same = f"skipped {unchanged} unchanged, " if unchanged else ""
    line = (
        f"{_count(len(reports), 'file')}: created {_count(created, 'document')}, {changed}{same}"
        f"skipped {_count(duplicates, 'duplicate')}, rejected {_count(rejected_files, 'file')}"
    )
    if rejected_records:
        line += f" and {_count(rejected_records, 'record')} in partly imported files"
    if ignored:
        line += f"; ignored {_count(ignored, 'file')} of other types in folders"
    return line


def _count(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"
