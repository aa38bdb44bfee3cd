"""`manage.py reindex_documents`: rebuilds segmented search text, vector and chunks in batches."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from documents.ingest import ingest_bytes
from documents.models import Chunk, Document
from search.backends import find_candidates

pytestmark = pytest.mark.django_db


def test_it_rebuilds_the_index_and_chunks_of_one_collection(collection, settings):
    settings.DOCUMENTS_CHUNK_TOKENS = 40
    for number in range(5):
        body = f"第{number}篇：红富士苹果产自山东。" + " ".join(
            f"Orchard note {number}.{i} about apples." for i in range(12)
        )
        ingest_bytes(f"doc{number}.txt", body.encode(), collection)
    other = ingest_bytes("other.txt", b"Pears elsewhere.", "test-other-collection").document_ids[0]
    chunks_before = Chunk.objects.filter(document__collection=collection).count()
    # Simulate an index built by an older segmenter: empty search text, no chunks.
    Document.objects.filter(collection=collection).update(title_search="", body_search="")
    Chunk.objects.filter(document__collection=collection).delete()
    Document.objects.filter(pk=other).update(body_search="")
    assert find_candidates("苹果", k=10, collection=collection).candidates == []

    out, err = StringIO(), StringIO()
    call_command("reindex_documents", "--collection", collection, "--batch-size", "2", stdout=out, stderr=err)

    lines = out.getvalue().splitlines()
    assert lines[:2] == [f"reindexed 5 documents in collection '{collection}'", "full-text index rebuilt: 5 documents"]
    # The chunk-vector hook reports too (what the worker it finds keeps, or that none reported in).
    assert len(lines) == 3 and lines[2].startswith("chunk vectors: "), lines
    assert "reindexing" in err.getvalue()
    assert len(find_candidates("苹果", k=10, collection=collection).candidates) == 5
    chunks = Chunk.objects.filter(document__collection=collection).select_related("document")
    assert chunks.count() == chunks_before > 5
    assert all(chunk.document.body[chunk.start : chunk.end] == chunk.text for chunk in chunks)
    assert Document.objects.get(pk=other).body_search == ""  # another collection is left alone
