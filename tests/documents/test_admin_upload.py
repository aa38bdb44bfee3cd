"""The admin's "Upload files" page: staff only, CSRF-protected, one result row per file."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client

from documents.models import LIBRARY, Document
from tests.support.files import text_pdf, upload, word_document

pytestmark = pytest.mark.django_db

UPLOAD_URL = "/admin/documents/document/upload/"


def test_it_links_the_upload_page_from_the_changelist(staff_client):
    response = staff_client.get("/admin/documents/document/")
    assert response.status_code == 200
    assert f'href="{UPLOAD_URL}"' in response.content.decode()


def test_it_stores_several_files_and_shows_a_result_per_file(staff_client, collection):
    Document.objects.create(collection=collection, title="x", body="x", language="en", content_hash="0" * 64)
    files = [
        upload("paper.pdf", text_pdf("Cross-encoders rerank candidates.")),
        upload("memo.docx", word_document("A memo about apples.", title="Memo")),
        upload("corpus.jsonl", b'{"_id": "1", "title": "A", "text": "one"}\n{"_id": "2", "title": "B", "text": "two"}'),
        upload("again.docx", word_document("A memo about apples.", title="Memo")),
        upload("locked.exe", b"MZ"),
    ]
    response = staff_client.post(UPLOAD_URL, {"files": files, "collection": collection})

    assert response.status_code == 200
    statuses = [(r.name, r.status, r.created) for r in response.context["reports"]]
    assert statuses == [
        ("paper.pdf", "created", 1),
        ("memo.docx", "created", 1),
        ("corpus.jsonl", "created", 2),
        ("again.docx", "duplicate", 0),
        ("locked.exe", "rejected", 0),
    ]
    page = response.content.decode()
    rows = re.findall(r'<tr class="upload-(\w+)">\s*<td>([^<]+)</td>', page)
    assert rows == [
        ("created", "paper.pdf"),
        ("created", "memo.docx"),
        ("created", "corpus.jsonl"),
        ("duplicate", "again.docx"),
        ("rejected", "locked.exe"),
    ]
    assert "skipped as duplicate" in page
    assert "unsupported file type &#x27;.exe&#x27;" in page
    assert "Created 4 documents, skipped 1 duplicate, rejected 1 file." in " ".join(page.split())
    assert Document.objects.filter(collection=collection).count() == 5


def test_it_offers_one_input_for_several_files(staff_client):
    page = staff_client.get(UPLOAD_URL).content.decode()
    inputs = re.findall(r"<input[^>]*type=\"file\"[^>]*>", page)
    assert len(inputs) == 1
    assert " multiple" in inputs[0] and 'name="files"' in inputs[0]
    assert 'enctype="multipart/form-data"' in page


def test_it_asks_for_at_least_one_file(staff_client, collection):
    response = staff_client.post(UPLOAD_URL, {"collection": collection})
    assert response.status_code == 200
    assert "Choose one or more files." in response.content.decode()
    assert response.context["reports"] == []


def test_it_sends_anonymous_users_to_the_login_page(client, collection):
    before = Document.objects.count()
    response = client.post(UPLOAD_URL, {"files": [upload("a.txt", b"anonymous text")], "collection": collection})
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert client.get(UPLOAD_URL).status_code == 302
    assert Document.objects.count() == before


def test_it_refuses_staff_without_the_add_permission(collection):
    from django.contrib.auth.models import User

    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    client = Client()
    client.force_login(viewer)
    response = client.post(UPLOAD_URL, {"files": [upload("a.txt", b"viewer text")], "collection": collection})
    assert response.status_code == 403
    assert not Document.objects.filter(collection=collection).exists()


def test_it_needs_the_csrf_token(staff_user, collection):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    refused = client.post(UPLOAD_URL, {"files": [upload("a.txt", b"no token")], "collection": collection})
    assert refused.status_code == 403
    assert not Document.objects.filter(collection=collection).exists()

    token = client.get(UPLOAD_URL).context["csrf_token"]
    accepted = client.post(
        UPLOAD_URL,
        {"files": [upload("a.txt", b"with token")], "collection": collection, "csrfmiddlewaretoken": str(token)},
    )
    assert accepted.status_code == 200
    assert Document.objects.filter(collection=collection).count() == 1


def test_it_names_the_json_fields_it_reads_with_an_example_it_accepts(staff_client, collection):
    page = staff_client.get(UPLOAD_URL).content.decode()

    fields = re.findall(r"<tr><td><code>([^<]+)</code></td>", page)
    assert fields == ["id (or _id)", "title", "content, text or body", "language", "source or url", "metadata"]
    example = html.unescape(re.search(r'<pre id="json-example">([^<]+)</pre>', page).group(1))
    # The example is a record the upload reads as the page says.
    response = staff_client.post(
        UPLOAD_URL, {"files": [upload("example.jsonl", example.encode())], "collection": collection}
    )
    stored = Document.objects.get(collection=collection)
    assert (stored.external_id, stored.title, stored.language) == ("doc-1", "Granny Smith apples", "en")
    assert stored.metadata == {"year": 2024, "url": "https://example.org/apples"}
    assert response.context["reports"][0].status == "created"


@pytest.mark.parametrize("in_library", [True, False], ids=["library", "other collection"])
def test_every_created_or_updated_document_in_the_report_links_to_itself(staff_client, collection, in_library):
    """Library documents link to their page on the site; other collections' to the admin's."""
    target = LIBRARY if in_library else collection
    first = b'{"id": "up-r1", "title": "Alpha", "text": "one"}\n{"id": "up-r2", "title": "Beta", "text": "two"}\n'
    staff_client.post(UPLOAD_URL, {"files": [upload("records.jsonl", first)], "collection": target})
    changed = first.replace(b'"two"', b'"two, changed"') + b'{"id": "up-r3", "title": "Gamma", "text": "three"}\n'

    response = staff_client.post(UPLOAD_URL, {"files": [upload("records.jsonl", changed)], "collection": target})

    report = response.context["reports"][0]
    assert (report.created, report.updated, report.unchanged) == (1, 1, 1)  # re-importing updates, as before
    stored = {doc.external_id: doc for doc in Document.objects.filter(collection=target, external_id__startswith="up-")}
    assert len(stored) == 3

    def page_of(document: Document) -> str:
        return document.get_absolute_url() if in_library else f"/admin/documents/document/{document.pk}/change/"

    links = re.findall(r'<li>(\w+): <a href="([^"]+)">([^<]+)</a>', response.content.decode())
    assert links == [("created", page_of(stored["up-r3"]), "Gamma"), ("updated", page_of(stored["up-r2"]), "Beta")]
    opened = staff_client.get(page_of(stored["up-r3"]))
    assert opened.status_code == 200
    assert "Gamma" in opened.content.decode()
