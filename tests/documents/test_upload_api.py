"""POST /api/v1/documents/upload: the admin's ingest rules, for staff only."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from documents.models import LIBRARY, Document
from tests.support.files import text_pdf, upload

pytestmark = pytest.mark.django_db

UPLOAD_URL = "/api/v1/documents/upload"


def test_it_ingests_each_file_and_reports_it(staff_api):
    before = Document.objects.filter(collection=LIBRARY).count()
    files = [
        upload("api-notes.txt", "Upload API notes about 苹果.".encode()),
        upload("fake.pdf", b"plain words"),
        upload("api-paper.pdf", text_pdf("An uploaded paper on rerankers.")),
    ]
    response = staff_api.post(UPLOAD_URL, {"files": files}, format="multipart")

    assert response.status_code == 200
    reports = response.json()["files"]
    assert [(r["name"], r["status"], r["created"]) for r in reports] == [
        ("api-notes.txt", "created", 1),
        ("fake.pdf", "rejected", 0),
        ("api-paper.pdf", "created", 1),
    ]
    assert reports[1]["rejected"] == ["the file is named .pdf but is not a PDF (it is text or other data)"]
    assert Document.objects.filter(collection=LIBRARY).count() == before + 2
    stored = Document.objects.get(pk=reports[2]["document_ids"][0])
    assert (stored.source, stored.body) == ("api-paper.pdf", "An uploaded paper on rerankers.")


def test_it_asks_for_files(staff_api):
    response = staff_api.post(UPLOAD_URL, {}, format="multipart")
    assert response.status_code == 400


@pytest.mark.parametrize("who", ["anonymous", "plain"])
def test_it_refuses_non_staff(plain_user, who):
    client = APIClient()
    if who == "plain":
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=plain_user).key}")
    before = Document.objects.count()
    response = client.post(UPLOAD_URL, {"files": [upload("x.txt", b"not allowed")]}, format="multipart")
    assert response.status_code == (401 if who == "anonymous" else 403)
    assert Document.objects.count() == before


def test_it_refuses_a_body_type_it_does_not_read_with_a_documented_415(staff_api):
    # Found by the schema fuzzing: a 415 the schema did not list.
    response = staff_api.post(UPLOAD_URL, data=b"just words", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["error"] == 'Unsupported media type "text/plain" in request.'
    schema = staff_api.get("/api/v1/schema", {"format": "json"}).json()
    assert "415" in schema["paths"][UPLOAD_URL]["post"]["responses"]
