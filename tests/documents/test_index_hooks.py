"""Index hooks hear of every committed write (create, update, import, re-index, delete), and only those."""

from __future__ import annotations

import pytest
from django.db import transaction

from documents.models import Document
from documents.services import (
    DocumentInput,
    document_create,
    document_update,
    documents_delete,
    documents_import,
    documents_reindex,
)

pytestmark = pytest.mark.django_db

heard: list[dict] = []  # what `record` was called with, in order


def record(*, changed: list[int], deleted: list[int], collection: str | None) -> None:
    heard.append({"changed": changed, "deleted": deleted, "collection": collection})


def explode(**kwargs: object) -> None:
    raise RuntimeError("this hook always fails")


@pytest.fixture(autouse=True)
def _recording(settings):
    settings.DOCUMENTS_INDEX_HOOKS = ["tests.documents.test_index_hooks.record"]
    heard.clear()
    yield
    heard.clear()


def test_it_announces_creates_updates_imports_reindexes_and_deletes(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = document_create(item=DocumentInput(title="Hooks", body="Hooks hear of this."), collection="hooks")
    pk = created.document.pk
    with django_capture_on_commit_callbacks(execute=True):
        document_update(document=created.document, body="Hooks hear of this, edited.")
    with django_capture_on_commit_callbacks(execute=True):
        outcome = documents_import(
            items=[DocumentInput(title=f"Bulk {i}", body=f"Bulk body {i}.") for i in range(3)], collection="hooks"
        )
    with django_capture_on_commit_callbacks(execute=True):
        documents_reindex(documents=list(Document.objects.filter(pk=pk)))
    with django_capture_on_commit_callbacks(execute=True):
        documents_delete(documents=Document.objects.filter(collection="hooks"))
    assert heard == [
        {"changed": [pk], "deleted": [], "collection": "hooks"},
        {"changed": [pk], "deleted": [], "collection": "hooks"},
        {"changed": sorted(outcome.document_ids), "deleted": [], "collection": "hooks"},
        {"changed": [pk], "deleted": [], "collection": None},
        {"changed": [], "deleted": sorted([pk, *outcome.document_ids]), "collection": None},
    ]


def test_it_announces_nothing_for_a_write_that_rolls_back(django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        document_create(item=DocumentInput(title="Rolled back", body="Never committed."), collection="hooks")
        raise RuntimeError("abort the transaction")
    assert callbacks == []
    assert heard == []
    assert not Document.objects.filter(collection="hooks").exists()


def test_it_keeps_a_committed_write_when_a_hook_fails(settings, django_capture_on_commit_callbacks):
    settings.DOCUMENTS_INDEX_HOOKS = [
        "tests.documents.test_index_hooks.explode",
        "tests.documents.test_index_hooks.record",
    ]
    with django_capture_on_commit_callbacks(execute=True):
        created = document_create(item=DocumentInput(title="Survives", body="The write stands."), collection="hooks")
    assert Document.objects.filter(pk=created.document.pk).exists()
    assert heard == [{"changed": [created.document.pk], "deleted": [], "collection": "hooks"}]
