"""Writing the library: create, update, import and re-index documents, one transaction each.

Every write path goes through `_validate` (clean text, title, language) and `_fill` /
`_chunks_for` (hash, segmented search text, chunks), so the admin, the REST API and the import
command behave the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from documents import index_hooks
from documents.chunking import split_into_chunks
from documents.inputs import DocumentInput, IngestError, clean_text, derived_title
from documents.json_limits import MAX_JSON_DEPTH
from documents.markdown import markdown_text
from documents.models import LIBRARY, Chunk, Document, Language, content_hash
from documents.textsearch import detect_language, segment_for_index

logger = logging.getLogger(__name__)

# PostgreSQL caps one tsvector at 1 MB; index at most this much body text (the whole body is
# still stored, chunked and reranked). 300k characters stay well under the cap.
MAX_INDEXED_CHARS = 300_000
MAX_TITLE_CHARS = 500


@dataclass
class CreateResult:
    document: Document
    created: bool  # False: an exact duplicate already existed; `document` is that one


def _clean_json(value: object) -> object:
    """Return metadata with every string in it, keys included, cleaned like text (JSON may carry
    \\u0000 and lone surrogates, which PostgreSQL refuses).

    Iterative, with a stack of its own: no nesting exhausts Python's (500 levels of metadata used
    to end in a RecursionError whose debug page kept a web thread busy for minutes). Deeper than
    MAX_JSON_DEPTH levels is refused: PostgreSQL's jsonb and every reader recurse per level.
    """
    holder: list[object] = [None]
    stack: list[tuple[object, dict | list, object, int]] = [(value, holder, 0, 1)]
    while stack:
        item, parent, slot, depth = stack.pop()
        if isinstance(item, str):
            parent[slot] = clean_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise IngestError(f"the metadata nests deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                # Keys that clean to the same text keep the last value, as a dict literal would.
                children = {clean_text(str(key)): child for key, child in item.items()}
                cleaned: dict | list = dict.fromkeys(children)
            else:
                children = dict(enumerate(item))
                cleaned = [None] * len(item)
            parent[slot] = cleaned
            stack.extend((child, cleaned, key, depth + 1) for key, child in children.items())
        else:
            parent[slot] = item
    return holder[0]


def _validate(item: DocumentInput) -> DocumentInput:
    title = " ".join(clean_text(item.title or "").split())[:MAX_TITLE_CHARS]
    body = clean_text(item.body or "").strip()
    if not body:
        raise IngestError("the document has no text")
    if not title:
        title = derived_title(body)
    language = item.language or detect_language(f"{title}\n{body}")
    if language not in Language.values:
        language = detect_language(f"{title}\n{body}")
    return DocumentInput(
        title=title,
        body=body,
        language=language,
        source=clean_text(item.source or "")[:1000],
        external_id=clean_text(str(item.external_id or ""))[:200],
        metadata=_clean_json(item.metadata or {}),
        markdown=clean_text(item.markdown or ""),
    )


def content_hash_of(item: DocumentInput) -> str:
    """Return the content hash `item` would be stored under (raises IngestError if it cannot be)."""
    clean = _validate(item)
    return content_hash(clean.title, clean.body)


def _search_fields(title: str, body: str) -> dict:
    """Return the segmented text of each field, which PostgreSQL turns into the search vector.

    A title that is only the body's first line (derived, as for a passage without a title) is not
    indexed as a title: the words are in the body already and deserve no title weight.
    """
    indexed = body[:MAX_INDEXED_CHARS]
    title_search = "" if title == derived_title(body) else segment_for_index(title)
    return {"title_search": title_search, "body_search": segment_for_index(indexed)}


def _new_document(clean: DocumentInput, collection: str, digest: str) -> Document:
    """Return an unsaved Document of validated input, with its segmented search text."""
    return _fill(Document(collection=collection, external_id=clean.external_id), clean, digest)


# What an import writes into a document it updates (its collection and external id stay).
IMPORT_UPDATE_FIELDS = [
    "title", "body", "language", "source", "metadata", "markdown", "content_hash", "title_search", "body_search",
    "updated_at",
]  # fmt: skip


def _fill(document: Document, clean: DocumentInput, digest: str) -> Document:
    """Return `document` holding validated input and its segmented search text (not saved)."""
    document.title, document.body, document.language = clean.title, clean.body, clean.language
    document.source, document.metadata, document.content_hash = clean.source, clean.metadata, digest
    document.markdown = clean.markdown
    for name, value in _search_fields(clean.title, clean.body).items():
        setattr(document, name, value)
    return document


def _chunks_for(document: Document) -> list[Chunk]:
    spans = split_into_chunks(document.body, settings.DOCUMENTS_CHUNK_TOKENS)
    return [Chunk(document=document, ordinal=i, text=s.text, start=s.start, end=s.end) for i, s in enumerate(spans)]


def _too_large(error: DatabaseError) -> IngestError | None:
    if "too long for tsvector" in str(error) or "exceeds the maximum" in str(error):
        return IngestError("the document is too large for the full-text index; split it into smaller files")
    return None


def _constraint(error: IntegrityError) -> str | None:
    """Return the name of the constraint `error` violated, as PostgreSQL reports it."""
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None)


def document_create(*, item: DocumentInput, collection: str = LIBRARY) -> CreateResult:
    """Return the new document (or the existing exact duplicate), with chunks and index.

    One transaction: a failure leaves no document, chunk or index row behind.
    """
    clean = _validate(item)
    digest = content_hash(clean.title, clean.body)
    existing = Document.objects.filter(collection=collection, content_hash=digest).first()
    if existing is not None:
        return CreateResult(document=existing, created=False)
    document = _new_document(clean, collection, digest)
    try:
        with transaction.atomic():
            document.save()
            Chunk.objects.bulk_create(_chunks_for(document))
            index_hooks.announce(changed=[document.pk], collection=collection)
    except IntegrityError as error:
        if _constraint(error) == "document_unique_external_id":
            raise IngestError(
                f"another document in this collection already has the id {clean.external_id!r}"
            ) from error
        # Another writer stored the same text between our check and our insert.
        existing = Document.objects.filter(collection=collection, content_hash=digest).first()
        if existing is None:
            raise
        return CreateResult(document=existing, created=False)
    except DatabaseError as error:
        too_large = _too_large(error)
        if too_large is None:
            raise
        raise too_large from error
    return CreateResult(document=document, created=True)


def document_update(*, document: Document, **changes: object) -> Document:
    """Return `document` with `changes` applied, re-chunked and re-indexed in one transaction."""
    for name, value in changes.items():
        setattr(document, name, value)
    clean = _validate(DocumentInput.of(document))
    document.title, document.body, document.language = clean.title, clean.body, clean.language
    document.source, document.external_id, document.metadata = clean.source, clean.external_id, clean.metadata
    # An edit of the text leaves the Markdown it came from behind: the page then shows the text.
    document.markdown = clean.markdown if clean.markdown and markdown_text(clean.markdown).text == clean.body else ""
    document.content_hash = content_hash(clean.title, clean.body)
    for name, value in _search_fields(clean.title, clean.body).items():
        setattr(document, name, value)
    try:
        with transaction.atomic():
            document.save()
            document.chunks.all().delete()
            Chunk.objects.bulk_create(_chunks_for(document))
            index_hooks.announce(changed=[document.pk], collection=document.collection)
    except IntegrityError as error:
        if _constraint(error) == "document_unique_external_id":
            raise IngestError(
                f"another document in this collection already has the id {document.external_id!r}"
            ) from error
        raise IngestError("another document in this collection already has exactly this title and text") from error
    except DatabaseError as error:
        too_large = _too_large(error)
        if too_large is None:
            raise
        raise too_large from error
    document.refresh_from_db(fields=["search_vector"])
    return document


@dataclass
class ImportTally:
    """What an import did, counted: by `documents_import`, and for one file by documents.ingest."""

    created: int = 0
    updated: int = 0  # an external id already stored, with new text: that document now holds it
    unchanged: int = 0  # an external id already stored with this very text: skipped
    duplicates: int = 0  # the same text as another document: skipped
    rejected: list[str] = field(default_factory=list)
    document_ids: list[int] = field(default_factory=list)  # of the documents created
    updated_ids: list[int] = field(default_factory=list)  # of the documents updated
    duplicate_of: int | None = None  # the stored document a single document duplicates

    def add(self, other: ImportTally) -> None:
        """Count `other`'s documents in this tally too."""
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.duplicates += other.duplicates
        self.rejected.extend(other.rejected)
        self.document_ids.extend(other.document_ids)
        self.updated_ids.extend(other.updated_ids)


@dataclass
class _BatchPlan:
    """What one batch will write: new documents, and stored ones with their new text."""

    new: dict[str, Document] = field(default_factory=dict)  # by external id ("hash:..." for none)
    changed: dict[int, Document] = field(default_factory=dict)  # by pk
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)


def documents_import(
    *, items: Iterable[DocumentInput], collection: str = LIBRARY, batch_size: int = 500
) -> ImportTally:
    """Return counts after storing `items` in batches (one transaction per batch).

    Idempotent by external id within the collection: an id already stored with the same text is
    skipped (unchanged), with new text it updates that document (re-chunked, re-indexed; a unique
    constraint keeps one document per id). Records without an id are skipped when
    their exact text is stored. Batched writes make large imports fast; an item that fails
    validation is rejected alone.
    """
    outcome = ImportTally()
    for batch in _batches(items, batch_size):
        # Planned and written in one transaction, after every earlier import batch of this
        # collection committed: two imports of the same ids at once update, never duplicate.
        with transaction.atomic():
            _queue_for(collection)
            plan = _plan_batch(batch, collection)
            try:
                _write_batch(plan, collection)
            except DatabaseError as error:
                if is_outage(error):
                    raise
                # One bad row fails the whole batch: fall back to one transaction per document.
                _write_one_by_one(plan, collection, outcome)
                written = False
            else:
                written = True
        outcome.unchanged += plan.unchanged
        outcome.duplicates += plan.duplicates
        outcome.rejected.extend(plan.rejected)
        if written:
            outcome.created += len(plan.new)
            outcome.updated += plan.updated
            outcome.document_ids.extend(doc.pk for doc in plan.new.values())
            outcome.updated_ids.extend(plan.changed)
    return outcome


# The first key of the advisory lock that queues import batches per collection (the second is a
# hash of the collection's name). search_bm25_pack uses 2512 for its own lock.
IMPORT_LOCK_KEY = 2513


def _queue_for(collection: str) -> None:
    """Wait until no other import batch of `collection` is in flight; hold that until commit."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [IMPORT_LOCK_KEY, collection])


# SQLSTATE classes of a database that is gone rather than of a statement it refused: connection
# exceptions, and an operator's shutdown (57P01-57P03).
_OUTAGE_STATES = ("08", "57P01", "57P02", "57P03")


def is_outage(error: DatabaseError) -> bool:
    """Return whether `error` says the database cannot be reached (as opposed to refusing data)."""
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    state = getattr(error.__cause__, "sqlstate", None)
    return state is None or state.startswith(_OUTAGE_STATES)


def _plan_batch(batch: list[DocumentInput], collection: str) -> _BatchPlan:
    """Return what `batch` changes, as if its items were stored one after another (2 queries)."""
    plan = _BatchPlan()
    cleaned: list[tuple[DocumentInput, str]] = []
    for item in batch:
        try:
            clean = _validate(item)
        except IngestError as error:
            plan.rejected.append(f"{item.external_id or item.title[:40]!r}: {error}")
            continue
        cleaned.append((clean, content_hash(clean.title, clean.body)))
    ids = {clean.external_id for clean, _ in cleaned if clean.external_id}
    stored: dict[str, Document] = {}
    # documents_document(collection, external_id) index; one document per id (document_unique_external_id).
    for document in (
        Document.objects.filter(collection=collection, external_id__in=ids)
        .only("id", "collection", "external_id", "content_hash")
        .order_by("id")
    ):
        stored.setdefault(document.external_id, document)
    digests = {digest for _, digest in cleaned}
    # Who holds each text now (the unique constraint on collection and content hash).
    holders: dict[str, int | str] = dict(
        Document.objects.filter(collection=collection, content_hash__in=digests).values_list("content_hash", "id")
    )
    latest = {external_id: document.content_hash for external_id, document in stored.items()}
    for clean, digest in cleaned:
        external_id = clean.external_id
        if external_id and latest.get(external_id) == digest:
            plan.unchanged += 1
            continue
        target = stored.get(external_id) if external_id else None
        # Who will hold this text: a stored document's pk, or the key of a new one.
        owner: int | str = target.pk if target is not None else (external_id or f"hash:{digest}")
        holder = holders.get(digest)
        if holder is not None and (holder != owner or not external_id):
            if external_id in latest:
                shown = f"document #{holder}" if isinstance(holder, int) else "another record of this import"
                plan.rejected.append(f"{external_id!r}: its new text is exactly that of {shown}; not updated")
            else:
                plan.duplicates += 1  # a new record whose exact text is stored (or earlier in the batch)
            continue
        if external_id in latest:
            # A new version: of a stored document, or of a record earlier in this batch.
            plan.updated += 1
            if holders.get(latest[external_id]) == owner:
                del holders[latest[external_id]]  # its old text is free again
        if external_id:
            latest[external_id] = digest
        holders[digest] = owner
        if target is not None:
            plan.changed[target.pk] = _fill(target, clean, digest)
        else:
            plan.new[owner] = _new_document(clean, collection, digest)
    return plan


def _write_batch(plan: _BatchPlan, collection: str) -> None:
    new, changed = list(plan.new.values()), list(plan.changed.values())
    now = timezone.now()
    for document in changed:
        document.updated_at = now
    with transaction.atomic():
        Document.objects.bulk_create(new)
        if changed:
            Document.objects.bulk_update(changed, IMPORT_UPDATE_FIELDS)
            Chunk.objects.filter(document_id__in=[document.pk for document in changed]).delete()
        Chunk.objects.bulk_create([chunk for doc in (*new, *changed) for chunk in _chunks_for(doc)], batch_size=2000)
        index_hooks.announce(changed=[doc.pk for doc in (*new, *changed)], collection=collection)


def _write_one_by_one(plan: _BatchPlan, collection: str, outcome: ImportTally) -> None:
    """Store a batch that failed as a whole one document at a time, each in its own transaction."""
    outcome.updated += plan.updated - len(plan.changed)  # new versions of records earlier in the batch
    for document in plan.new.values():
        try:
            result = document_create(item=DocumentInput.of(document), collection=collection)
        except (IngestError, DatabaseError) as error:
            if isinstance(error, DatabaseError) and is_outage(error):
                raise
            outcome.rejected.append(f"{document.external_id or document.title[:40]!r}: {error}")
            continue
        # A concurrent writer may have stored the same text since our duplicate check.
        if result.created:
            outcome.created += 1
            outcome.document_ids.append(result.document.pk)
        else:
            outcome.duplicates += 1
    for document in plan.changed.values():
        try:
            document_update(document=document)
        except (IngestError, DatabaseError) as error:
            if isinstance(error, DatabaseError) and is_outage(error):
                raise
            outcome.rejected.append(f"{document.external_id!r}: {error}")
            continue
        outcome.updated += 1
        outcome.updated_ids.append(document.pk)


def _batches(items: Iterable[DocumentInput], size: int) -> Iterator[list[DocumentInput]]:
    batch: list[DocumentInput] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def documents_reindex(*, documents: list[Document]) -> int:
    """Return how many documents had their segmented search text (so their vector) and chunks
    rebuilt, in one transaction: an UPDATE, a DELETE and an INSERT for the whole batch."""
    for document in documents:
        for name, value in _search_fields(document.title, document.body).items():
            setattr(document, name, value)
    with transaction.atomic():
        Document.objects.bulk_update(documents, ["title_search", "body_search"])
        Chunk.objects.filter(document_id__in=[document.pk for document in documents]).delete()
        Chunk.objects.bulk_create([chunk for doc in documents for chunk in _chunks_for(doc)], batch_size=2000)
        index_hooks.announce(changed=[document.pk for document in documents])
    return len(documents)


def documents_delete(*, documents: Iterable[Document]) -> int:
    """Return how many documents were deleted, with their chunks, in one transaction; the index
    hooks hear of it after the commit (the admin, the REST API and commands all delete here)."""
    ids = [document.pk for document in documents]
    with transaction.atomic():
        _, per_model = Document.objects.filter(pk__in=ids).delete()
        index_hooks.announce(deleted=ids)
    return per_model.get(Document._meta.label, 0)
