"""File ingestion shared by the admin upload page, the REST upload and `import_documents`.

Each file is parsed (documents.parsers) and stored through documents.services; one file's failure
never stops the others, and every file gets a one-line report for the person who sent it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError

from documents.inputs import DocumentInput, IngestError
from documents.models import LIBRARY
from documents.parsers import ParseError, parse_file_lenient, upload_size_problem
from documents.services import ImportTally, document_create, documents_import, is_outage

logger = logging.getLogger(__name__)

# Documents per transaction when a file holds many (JSON / JSON Lines): big enough to be fast,
# small enough that one failing batch costs little to retry one by one.
DEFAULT_BATCH_SIZE = 500

# Called with (documents handled so far, documents in the file) after parsing and after each batch.
Progress = Callable[[int, int], None]


@dataclass(kw_only=True)
class FileReport(ImportTally):
    """One file's tally, with a status and a one-line message for the person who sent it."""

    name: str
    # "created" (some documents new), "updated" (none new, some stored ones changed), "duplicate"
    # (nothing to store: every record unchanged or a duplicate), "partial" (some rejected),
    # "rejected" (nothing stored).
    status: str
    message: str = ""

    def as_dict(self) -> dict:
        """Return the report as the upload API sends it."""
        return {
            "name": self.name,
            "status": self.status,
            "created": self.created,
            "updated": self.updated,  # stored documents (same external id) whose text this file changed
            "unchanged": self.unchanged,  # records whose external id is stored with this very text
            "duplicates": self.duplicates,  # records whose exact text another document holds
            "rejected": list(self.rejected),
            "message": self.message,
            "document_ids": list(self.document_ids),  # the documents this file created
            "updated_ids": list(self.updated_ids),  # the documents this file updated
        }


def ingest_upload(uploaded_file: UploadedFile, *, collection: str = LIBRARY) -> FileReport:
    """Return the report for one uploaded file (reads it into memory unless it is over the limit)."""
    name = uploaded_file.name or "unnamed"
    too_big = upload_size_problem(uploaded_file.size or 0)
    if too_big:
        return _rejected(name, too_big)
    data = b"".join(uploaded_file.chunks())
    return ingest_bytes(name, data, collection=collection)


def ingest_path(
    path: Path, *, collection: str = LIBRARY, batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress | None = None
) -> FileReport:
    """Return the report for one file on disk, named by its path (reads the file)."""
    try:
        too_big = upload_size_problem(path.stat().st_size)
        data = b"" if too_big else path.read_bytes()
    except OSError as error:
        return _rejected(str(path), f"cannot read the file ({error.strerror or error})")
    if too_big:
        return _rejected(str(path), too_big)
    report = ingest_bytes(path.name, data, collection=collection, batch_size=batch_size, progress=progress)
    report.name = str(path)
    return report


def ingest_bytes(
    name: str,
    data: bytes,
    collection: str = LIBRARY,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> FileReport:
    """Return the report for one file's bytes after storing its documents (database writes).

    A single document without an external id goes in through `document_create` (one
    transaction); records with ids, and files of many, go in through `documents_import` in
    batches: idempotent by external id, a bad record rejected alone.
    """
    try:
        parsed = parse_file_lenient(name, data)
    except ParseError as error:
        return _rejected(name, str(error))
    total = len(parsed.items)
    if progress:
        progress(0, total)
    outcome = ImportTally(rejected=list(parsed.problems))
    if total == 1 and not parsed.items[0].external_id:
        _create_one(parsed.items[0], collection, outcome)
        if progress:
            progress(1, 1)
    else:
        for start in range(0, total, batch_size):
            batch = parsed.items[start : start + batch_size]
            try:
                # One batch, one transaction: it is stored whole or not at all.
                result = documents_import(items=batch, collection=collection, batch_size=batch_size)
            except DatabaseError as error:
                if is_outage(error):
                    # One line for the whole rest of the file, not one per record, and never the
                    # driver's words (host names, socket paths).
                    logger.warning("import of %s stopped at record %d of %d: database unavailable", name, start, total)
                    outcome.rejected.append(_unavailable(start, total))
                    break
                logger.exception("import of %s failed", name)
                outcome.rejected.append(
                    f"documents {start + 1}-{start + len(batch)}: the database refused them ({error})"
                )
            else:
                outcome.add(result)
            if progress:
                progress(min(start + batch_size, total), total)
    return _report(name, outcome)


def _unavailable(start: int, total: int) -> str:
    """Return the one report line of an import the database went away from at record `start`."""
    again = "send the file again once the database is back"
    if start == 0:
        return f"database unavailable: none of the {total:,} records was stored; {again}"
    return (
        f"database unavailable: records 1-{start:,} were handled as counted here, records "
        f"{start + 1:,}-{total:,} were not stored; {again} (stored records are skipped as unchanged)"
    )


def _create_one(item: DocumentInput, collection: str, outcome: ImportTally) -> None:
    try:
        result = document_create(item=item, collection=collection)
    except IngestError as error:
        outcome.rejected.append(str(error))
        return
    except DatabaseError as error:
        if is_outage(error):
            logger.warning("storing %s failed: database unavailable", item.source)
            outcome.rejected.append("database unavailable: the document was not stored; send it again once it is back")
            return
        logger.exception("storing %s failed", item.source)
        outcome.rejected.append(f"the database refused the document ({error})")
        return
    if result.created:
        outcome.created += 1
        outcome.document_ids.append(result.document.pk)
    else:
        outcome.duplicates += 1
        outcome.duplicate_of = result.document.pk


def _rejected(name: str, reason: str) -> FileReport:
    return FileReport(name=name, status="rejected", rejected=[reason], message=f"rejected: {reason}")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _report(name: str, outcome: ImportTally) -> FileReport:
    created, updated, rejected = outcome.created, outcome.updated, outcome.rejected
    skipped = outcome.unchanged + outcome.duplicates
    if not created and not updated and not skipped:
        reason = (
            rejected[0] if len(rejected) == 1 else f"{_plural(len(rejected), 'problem')}: {'; '.join(rejected[:3])}"
        )
        return FileReport(name=name, status="rejected", rejected=rejected, message=f"rejected: {reason}")
    if not created and not updated and not rejected:
        message = _skipped_message(outcome)
    else:
        parts = [f"created {_plural(created, 'document')}"] if created or not updated else []
        if updated:
            parts.append(f"updated {_plural(updated, 'document')}")
        if outcome.unchanged:
            parts.append(f"skipped {outcome.unchanged} unchanged")
        if outcome.duplicates:
            parts.append(f"skipped {_plural(outcome.duplicates, 'duplicate')}")
        if rejected:
            parts.append(f"rejected {len(rejected)}")
        message = ", ".join(parts)
    if rejected:
        status = "partial"
    elif created:
        status = "created"
    elif updated:
        status = "updated"
    else:
        status = "duplicate"
    return FileReport(name=name, status=status, message=message, **asdict(outcome))


def _skipped_message(outcome: ImportTally) -> str:
    """Return the message of a file that stored nothing new (every record unchanged or a duplicate)."""
    if outcome.duplicate_of is not None:
        return f"skipped as duplicate of document #{outcome.duplicate_of}"
    if not outcome.unchanged:
        return f"skipped as duplicate (all {_plural(outcome.duplicates, 'document')} already stored)"
    if not outcome.duplicates:
        return f"skipped as unchanged (all {_plural(outcome.unchanged, 'document')} already stored with this text)"
    return f"skipped {outcome.unchanged} unchanged and {_plural(outcome.duplicates, 'duplicate')}"
