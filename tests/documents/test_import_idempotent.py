"""Imports are idempotent by external id within a collection: the same id with new text updates
that document (same id, new chunks, found by its new words and no longer by its old ones, the
index hooks told), the same text is skipped, and each file's report says which.

Before this, re-importing a changed record added a second document with the same external id.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from documents.models import Chunk, Document
from documents.services import DocumentInput, documents_import
from search.services import search_run

pytestmark = pytest.mark.django_db

heard: list[dict] = []  # what `record` heard, in order


def record(*, changed: list[int], deleted: list[int], collection: str | None) -> None:
    heard.append({"changed": changed, "deleted": deleted, "collection": collection})


@pytest.fixture(autouse=True)
def _recording(settings):
    settings.DOCUMENTS_INDEX_HOOKS = ["tests.documents.test_import_idempotent.record"]
    settings.RERANK_TIMEOUT = 0.2  # the searches below only read the full-text order
    heard.clear()
    yield
    heard.clear()


def write_jsonl(path: Path, records: dict[str, str]) -> Path:
    lines = [{"id": identifier, "title": f"Record {identifier}", "text": text} for identifier, text in records.items()]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def run_import(path: Path, collection: str) -> list[str]:
    out = StringIO()
    call_command("import_documents", str(path), "--collection", collection, stdout=out, stderr=StringIO())
    return out.getvalue().splitlines()


def stored(collection: str, external_id: str) -> list[Document]:
    return list(Document.objects.filter(collection=collection, external_id=external_id))


def found(query: str, collection: str) -> list[str]:
    return [row.title for row in search_run(query=query, collection=collection).fulltext]


def test_it_updates_changed_records_and_skips_unchanged_ones(tmp_path, collection, django_capture_on_commit_callbacks):
    first = {
        "bulk-00000": "Granite quarries near the river.",
        "bulk-00001": "Pelicans nest on the old pier.",
        "bulk-00002": "Lanterns light the market square.",
    }
    with django_capture_on_commit_callbacks(execute=True):
        lines = run_import(write_jsonl(tmp_path / "first.jsonl", first), collection)
    assert lines[-1] == "1 file: created 3 documents, skipped 0 duplicates, rejected 0 files"
    before = {identifier: stored(collection, identifier)[0] for identifier in first}
    heard.clear()

    second = {**first, "bulk-00001": "Flamingos wade in the salt marsh.", "bulk-00003": "Comets cross the sky."}
    with django_capture_on_commit_callbacks(execute=True):
        lines = run_import(write_jsonl(tmp_path / "second.jsonl", second), collection)

    assert lines == [
        f"{tmp_path / 'second.jsonl'}: created 1 document, updated 1 document, skipped 2 unchanged",
        "1 file: created 1 document, updated 1 document, skipped 2 unchanged, skipped 0 duplicates, rejected 0 files",
    ]
    for identifier in second:
        assert len(stored(collection, identifier)) == 1, identifier  # never a second copy
    updated = stored(collection, "bulk-00001")[0]
    assert updated.pk == before["bulk-00001"].pk
    assert updated.body == "Flamingos wade in the salt marsh."
    assert updated.content_hash != before["bulk-00001"].content_hash
    assert [chunk.text for chunk in Chunk.objects.filter(document=updated)] == ["Flamingos wade in the salt marsh."]
    assert stored(collection, "bulk-00000")[0].updated_at == before["bulk-00000"].updated_at  # untouched
    # The index follows: found by its new words, no longer by its old ones.
    assert found("flamingos", collection) == ["Record bulk-00001"]
    assert found("pelicans", collection) == []
    # The hooks heard of exactly the documents that changed.
    new = stored(collection, "bulk-00003")[0]
    assert heard == [{"changed": sorted([updated.pk, new.pk]), "deleted": [], "collection": collection}]

    heard.clear()
    with django_capture_on_commit_callbacks(execute=True):
        again = run_import(write_jsonl(tmp_path / "again.jsonl", second), collection)
    unchanged = "skipped as unchanged (all 4 documents already stored with this text)"
    assert again[0] == f"{tmp_path / 'again.jsonl'}: {unchanged}"
    assert heard == []


def test_it_keeps_the_last_version_of_a_record_given_twice_in_one_file(collection):
    items = [
        DocumentInput(title="Twice", body="The first version of the record.", external_id="twice-1"),
        DocumentInput(title="Other", body="Another record altogether.", external_id="other-1"),
        DocumentInput(title="Twice", body="The second version of the record.", external_id="twice-1"),
    ]
    outcome = documents_import(items=items, collection=collection)

    assert (outcome.created, outcome.updated, outcome.unchanged) == (2, 1, 0)
    assert [document.body for document in stored(collection, "twice-1")] == ["The second version of the record."]


def test_it_refuses_an_update_to_the_exact_text_of_another_document(collection):
    documents_import(
        items=[
            DocumentInput(title="A", body="Alpha text.", external_id="a"),
            DocumentInput(title="B", body="Beta text.", external_id="b"),
        ],
        collection=collection,
    )
    holder = stored(collection, "a")[0]

    same_as_a = DocumentInput(title="A", body="Alpha text.", external_id="b")
    outcome = documents_import(items=[same_as_a], collection=collection)

    assert (outcome.created, outcome.updated) == (0, 0)
    assert outcome.rejected == [f"'b': its new text is exactly that of document #{holder.pk}; not updated"]
    assert stored(collection, "b")[0].body == "Beta text."


def test_it_updates_through_a_single_record_file_too(tmp_path, collection):
    write_jsonl(tmp_path / "one.json", {"solo-1": "A lone record about owls."})
    run_import(tmp_path / "one.json", collection)
    write_jsonl(tmp_path / "one.json", {"solo-1": "A lone record about herons."})

    lines = run_import(tmp_path / "one.json", collection)

    assert lines[0] == f"{tmp_path / 'one.json'}: updated 1 document"
    assert [document.body for document in stored(collection, "solo-1")] == ["A lone record about herons."]
