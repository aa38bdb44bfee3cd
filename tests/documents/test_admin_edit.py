"""Editing a document in the admin re-chunks and re-indexes it; a refused save is a form error."""

from __future__ import annotations

import pytest

from documents.models import Document
from documents.services import DocumentInput, document_create
from search.backends import find_candidates

pytestmark = pytest.mark.django_db


def form_data(document: Document, **changes: str) -> dict:
    data = {
        "title": document.title,
        "body": document.body,
        "language": document.language,
        "source": document.source,
        "external_id": document.external_id,
        "metadata": "{}",
        "collection": document.collection,
        # The read-only chunk inline still posts its management form.
        "chunks-TOTAL_FORMS": "0",
        "chunks-INITIAL_FORMS": "0",
        "chunks-MIN_NUM_FORMS": "0",
        "chunks-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


def create(collection: str, title: str, body: str) -> Document:
    return document_create(item=DocumentInput(title=title, body=body), collection=collection).document


def test_it_rechunks_and_reindexes_an_edited_document(staff_client, collection, settings):
    settings.DOCUMENTS_CHUNK_TOKENS = 40
    document = create(collection, "Orchards", "Apples grow in orchards.")
    assert document.chunks.count() == 1
    longer = " ".join(f"Sentence {i} tells of pears and their growers." for i in range(20))

    response = staff_client.post(f"/admin/documents/document/{document.pk}/change/", form_data(document, body=longer))

    assert response.status_code == 302
    document.refresh_from_db()
    assert document.body == longer
    assert document.chunks.count() > 1
    found = find_candidates("pears", k=5, collection=collection).candidates
    assert [c.document_id for c in found] == [document.pk]
    assert find_candidates("apples", k=5, collection=collection).candidates == []


def test_it_shows_a_duplicate_edit_as_a_form_error(staff_client, collection):
    first = create(collection, "First", "The first text.")
    second = create(collection, "Second", "The second text.")

    response = staff_client.post(
        f"/admin/documents/document/{second.pk}/change/", form_data(second, title="First", body="The first text.")
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [
        "another document in this collection already has exactly this title and text"
    ]
    assert "already has exactly this title and text" in response.content.decode()
    second.refresh_from_db()
    assert (second.title, second.body) == ("Second", "The second text.")
    assert second.chunks.get().text == "The second text."
    assert first.chunks.count() == 1


def test_it_shows_an_added_duplicate_as_a_form_error(staff_client, collection):
    existing = create(collection, "Only", "Only text.")
    before = Document.objects.count()
    data = form_data(existing)
    response = staff_client.post("/admin/documents/document/add/", data)
    assert response.status_code == 200
    assert f"an identical document is already in this collection: #{existing.pk}" in response.content.decode()
    assert Document.objects.count() == before
