"""REST documents API: anyone reads; only staff (token or session) create, update and delete."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from documents.models import LIBRARY, Document
from documents.services import DocumentInput, document_create

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/documents"


@pytest.fixture
def document() -> Document:
    item = DocumentInput(title="API apples", body="Apples for the API tests.")
    return document_create(item=item, collection=LIBRARY).document


@pytest.fixture
def plain_api(plain_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=plain_user).key}")
    return client


def test_it_lets_anyone_read(document):
    client = APIClient()
    listing = client.get(LIST_URL)
    assert listing.status_code == 200
    body = listing.json()
    rows = body["results"] if isinstance(body, dict) else body  # with or without pagination
    assert rows[0]["id"] == document.pk  # newest first
    detail = client.get(f"{LIST_URL}/{document.pk}")
    assert detail.status_code == 200
    assert (detail.json()["title"], detail.json()["chunk_count"]) == ("API apples", 1)


@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("plain", 403)])
def test_it_refuses_writes_from_non_staff(document, plain_api, who, status):
    client = plain_api if who == "plain" else APIClient()
    before = Document.objects.count()
    assert client.post(LIST_URL, {"title": "t", "body": "new text"}, format="json").status_code == status
    assert client.put(f"{LIST_URL}/{document.pk}", {"title": "t", "body": "b"}, format="json").status_code == status
    assert client.patch(f"{LIST_URL}/{document.pk}", {"body": "changed"}, format="json").status_code == status
    assert client.delete(f"{LIST_URL}/{document.pk}").status_code == status
    document.refresh_from_db()
    assert document.body == "Apples for the API tests."
    assert Document.objects.count() == before


def test_it_lets_staff_create_update_and_delete(staff_api, settings):
    settings.DOCUMENTS_CHUNK_TOKENS = 40
    created = staff_api.post(LIST_URL, {"title": "Staff doc", "body": "A short body."}, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["chunk_count"] == 1

    longer = " ".join(f"Sentence number {i} about staff documents." for i in range(30))
    updated = staff_api.patch(f"{LIST_URL}/{pk}", {"body": longer}, format="json")
    assert updated.status_code == 200, updated.content
    assert updated.json()["chunk_count"] > 1
    assert Document.objects.get(pk=pk).chunks.count() == updated.json()["chunk_count"]

    replaced = staff_api.put(f"{LIST_URL}/{pk}", {"title": "Replaced", "body": "Short again."}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["chunk_count"] == 1

    assert staff_api.delete(f"{LIST_URL}/{pk}").status_code == 204
    assert not Document.objects.filter(pk=pk).exists()


def test_it_answers_a_duplicate_create_with_the_existing_document(staff_api, document):
    again = staff_api.post(LIST_URL, {"title": document.title, "body": document.body}, format="json")
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["duplicate"]) == (document.pk, True)
