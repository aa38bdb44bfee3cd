"""A document whose write fails part-way leaves no document, chunk or index row behind."""

from __future__ import annotations

import pytest

from documents import services
from documents.chunking import ChunkSpan
from documents.ingest import ingest_bytes
from documents.models import Document
from tests.support.files import rows_in

pytestmark = pytest.mark.django_db


def test_it_rolls_back_a_document_whose_chunks_fail(collection, monkeypatch):
    real_split = services.split_into_chunks

    def split_badly(body: str, max_tokens: int) -> list[ChunkSpan]:
        if "poison" not in body:
            return real_split(body, max_tokens)
        # A negative offset breaks the database's CHECK constraint after the document row exists.
        return [ChunkSpan(start=-1, end=3, text=body, tokens=1)]

    monkeypatch.setattr(services, "split_into_chunks", split_badly)

    failed = ingest_bytes("poison.txt", b"This poison text cannot be chunked.", collection)
    kept = ingest_bytes("fine.txt", b"This text is fine.", collection)

    assert failed.status == "rejected"
    assert failed.message.startswith("rejected: the database refused the document")
    assert kept.status == "created"
    assert rows_in(collection) == (1, 1)
    assert not Document.objects.filter(collection=collection, source="poison.txt").exists()
