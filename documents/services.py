"""Writing the library: create, update, import and re-index documents, one transaction each.

Every write path goes through `_prepare` (language, hash, segmented search text) and
`_write_chunks`, so the admin, the REST API and the import command behave the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction

from documents import index_hooks
from documents.chunking import split_into_chunks
from documents.models import LIBRARY, Chunk, Document, content_hash
from documents.textsearch import detect_language, segment_for_index
from searchsite.json_limits import MAX_JSON_DEPTH

logger = logging.getLogger(__name__)

# PostgreSQL caps one tsvector at 1 MB; index at most this much body text (the whole body is
# still stored, chunked and reranked). 300k characters stay well under the cap.
MAX_INDEXED_CHARS = 300_000
MAX_TITLE_CHARS = 500


class IngestError(Exception):
    """A document that cannot go into the library, with a message for the person who sent it."""


@dataclass
class DocumentInput:
    title: str
    body: str
    language: str | None = None
    source: str = ""
    external_id: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass
class CreateResult:
    document: Document
    created: bool  # False: an exact duplicate already existed; `document` is that one


def _clean(value: str) -> str:
    """Return text PostgreSQL accepts: no NUL characters, no lone surrogates."""
    value = value.replace("\x00", "")
    return value.encode("utf-8", "replace").decode("utf-8")


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
            parent[slot] = _clean(item)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise IngestError(f"the metadata nests deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                # Keys that clean to the same text keep the last value, as a dict literal would.
                children = {_clean(str(key)): child for key, child in item.items()}
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
    title = " ".join(_clean(item.title or "").split())[:MAX_TITLE_CHARS]
    body = _clean(item.body or "").strip()
    if not body:
        raise IngestError("the document has no text")
    if not title:
        first_line = body.splitlines()[0]
        title = " ".join(first_line.split())[:120] or "Untitled"
    language = item.language or detect_language(f"{title}\n{body}")
    if language not in {"en", "zh", "mixed"}:
        language = detect_language(f"{title}\n{body}")
    return DocumentInput(
        title=title,
        body=body,
        language=language,
        source=_clean(item.source or "")[:1000],
        external_id=_clean(str(item.external_id or ""))[:200],
        metadata=_clean_json(item.metadata or {}),
    )


def _search_fields(title: str, body: str) -> dict:
    indexed = body[:MAX_INDEXED_CHARS]
    return {"title_search": segment_for_index(title), "body_search": segment_for_index(indexed)}


def _new_document(clean: DocumentInput, collection: str, digest: str) -> Document:
    """Return an unsaved Document of validated input, with its segmented search text."""
    return Document(
        collection=collection,
        title=clean.title,
        body=clean.body,
        language=clean.language,
        source=clean.source,
        external_id=clean.external_id,
        metadata=clean.metadata,
        content_hash=digest,
        **_search_fields(clean.title, clean.body),
    )


def _chunks_for(document: Document) -> list[Chunk]:
    spans = split_into_chunks(document.body, settings.DOCUMENTS_CHUNK_TOKENS)
    return [Chunk(document=document, ordinal=i, text=s.text, start=s.start, end=s.end) for i, s in enumerate(spans)]


def _too_large(error: DatabaseError) -> IngestError | None:
    if "too long for tsvector" in str(error) or "exceeds the maximum" in str(error):
        return IngestError("the document is too large for the full-text index; split it into smaller files")
    return None


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
    except IntegrityError:
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
    clean = _validate(
        DocumentInput(
            title=document.title,
            body=document.body,
            language=document.language or None,
            source=document.source,
            external_id=document.external_id,
            metadata=document.metadata,
        )
    )
    document.title, document.body, document.language = clean.title, clean.body, clean.language
    document.source, document.external_id, document.metadata = clean.source, clean.external_id, clean.metadata
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
        raise IngestError("another document in this collection already has exactly this title and text") from error
    except DatabaseError as error:
        too_large = _too_large(error)
        if too_large is None:
            raise
        raise too_large from error
    document.refresh_from_db(fields=["search_vector"])
    return document


@dataclass
class ImportOutcome:
    created: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)
    document_ids: list[int] = field(default_factory=list)  # of the documents created


def documents_import(
    *, items: Iterable[DocumentInput], collection: str = LIBRARY, batch_size: int = 500
) -> ImportOutcome:
    """Return counts after inserting `items` in batches (one transaction per batch).

    Batched inserts make large imports fast; an item that fails validation is rejected alone.
    """
    outcome = ImportOutcome()
    for batch in _batches(items, batch_size):
        prepared: dict[str, Document] = {}
        for item in batch:
            try:
                clean = _validate(item)
            except IngestError as error:
                outcome.rejected.append(f"{item.external_id or item.title[:40]!r}: {error}")
                continue
            digest = content_hash(clean.title, clean.body)
            if digest in prepared:
                outcome.duplicates += 1
                continue
            prepared[digest] = _new_document(clean, collection, digest)
        known = set(
            Document.objects.filter(collection=collection, content_hash__in=list(prepared)).values_list(
                "content_hash", flat=True
            )
        )
        outcome.duplicates += len(known)
        new = [doc for digest, doc in prepared.items() if digest not in known]
        try:
            with transaction.atomic():
                Document.objects.bulk_create(new)
                Chunk.objects.bulk_create([chunk for doc in new for chunk in _chunks_for(doc)], batch_size=2000)
                index_hooks.announce(changed=[doc.pk for doc in new], collection=collection)
        except DatabaseError:
            # One bad row fails the whole batch: fall back to one transaction per document.
            for doc in new:
                try:
                    result = document_create(
                        item=DocumentInput(
                            title=doc.title,
                            body=doc.body,
                            language=doc.language,
                            source=doc.source,
                            external_id=doc.external_id,
                            metadata=doc.metadata,
                        ),
                        collection=collection,
                    )
                except (IngestError, DatabaseError) as error:
                    outcome.rejected.append(f"{doc.external_id or doc.title[:40]!r}: {error}")
                    continue
                # A concurrent writer may have stored the same text since our duplicate check.
                if result.created:
                    outcome.created += 1
                    outcome.document_ids.append(result.document.pk)
                else:
                    outcome.duplicates += 1
            continue
        outcome.created += len(new)
        outcome.document_ids.extend(doc.pk for doc in new)
    return outcome


def _batches(items: Iterable[DocumentInput], size: int) -> Iterator[list[DocumentInput]]:
    batch: list[DocumentInput] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def document_reindex(*, document: Document) -> None:
    """Rebuild one document's segmented search text and chunks (after a segmentation change)."""
    document_update(document=document)


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
