"""A JSON Lines file goes in through the batched import: bad records alone are rejected."""

from __future__ import annotations

import json

import pytest

from documents.ingest import ingest_bytes
from documents.models import Document
from tests.support.files import rows_in

pytestmark = pytest.mark.django_db


def jsonl(*records: object) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records).encode()


def test_it_imports_the_good_records_and_reports_the_bad_one(collection):
    data = jsonl(
        {"_id": "a", "title": "Alpha", "text": "First body."},
        '{"_id": "b", "title": "Broken"',
        {"_id": "c", "title": "Gamma", "text": "第三篇文章的正文。"},
        {"_id": "d", "title": "No text"},
    )
    report = ingest_bytes("batch.jsonl", data, collection=collection, batch_size=2)
    assert report.status == "partial"
    assert (report.created, report.duplicates) == (2, 0)
    assert report.rejected == [
        "line 2: invalid JSON at column 31: Expecting ',' delimiter",
        "line 4: no text: the object needs a `content`, `text` or `body` field",
    ]
    assert report.message == "created 2 documents, rejected 2"
    stored = Document.objects.filter(collection=collection)
    assert sorted(stored.values_list("external_id", flat=True)) == ["a", "c"]
    assert sorted(report.document_ids) == sorted(stored.values_list("pk", flat=True))
    assert stored.get(external_id="c").language == "zh"


def test_it_skips_duplicates_within_and_across_files(collection):
    first = ingest_bytes("one.jsonl", jsonl({"title": "A", "text": "same"}, {"title": "A", "text": "same"}), collection)
    assert (first.status, first.created, first.duplicates) == ("created", 1, 1)
    assert first.message == "created 1 document, skipped 1 duplicate"
    again = ingest_bytes(
        "two.jsonl", jsonl({"title": "A", "text": "same"}, {"title": "A", "text": "  same "}), collection
    )
    assert (again.status, again.created, again.duplicates) == ("duplicate", 0, 2)
    assert rows_in(collection)[0] == 1


def test_it_reports_a_single_document_duplicate_by_id(collection):
    first = ingest_bytes("a.txt", b"Same words here.", collection)
    second = ingest_bytes("b.txt", b"Same   words here.\n", collection)
    assert (first.status, second.status) == ("created", "duplicate")
    assert second.message == f"skipped as duplicate of document #{first.document_ids[0]}"
    assert second.document_ids == []
