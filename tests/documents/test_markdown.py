"""Markdown files: indexed as their text (no `#`, `**` or link syntax in the body, the title from
the first heading), shown rendered on the document page, safely: raw HTML is text, unsafe link
targets are not links, images fetch nothing. Before, the raw Markdown was stored and shown."""

from __future__ import annotations

import pytest

from documents.models import Document
from documents.parsers import limits
from tests.support.files import upload

pytestmark = pytest.mark.django_db

UPLOAD_URL = "/api/v1/documents/upload"
GUIDE = """Orchard guide
=============

Some *intro* on **orchard** care, with a [link](https://example.org/care) and `pruning shears`.

## Green ones

- Granny Smith
- Bramley

| Variety | Colour |
|---|---|
| Fuji | red |
"""
HOSTILE = """# Hostile

<script>alert(1)</script> [click](javascript:alert(2)) <img src=x onerror=alert(3)>

![a tracking pixel](https://tracker.example/pixel.png) and [a page](https://example.org/ok)
"""


def store(staff_api, name: str, text: str) -> Document:
    response = staff_api.post(UPLOAD_URL, {"files": [upload(name, text.encode())]})
    report = response.json()["files"][0]
    assert report["status"] == "created", report
    return Document.objects.get(pk=report["document_ids"][0])


def test_it_indexes_the_text_of_markdown_and_keeps_its_source(staff_api):
    document = store(staff_api, "guide.md", GUIDE)

    assert document.title == "Orchard guide"
    assert document.body == (
        "Orchard guide\n\n"
        "Some intro on orchard care, with a link and pruning shears.\n\n"
        "Green ones\n\n"
        "Granny Smith\nBramley\n\n"
        "Variety\tColour\nFuji\tred"
    )
    assert document.markdown == GUIDE
    assert all(chunk.text.count("*") == 0 for chunk in document.chunks.all())


def test_the_document_page_shows_markdown_rendered_with_the_query_marked(staff_api, client):
    document = store(staff_api, "guide.md", GUIDE)

    page = client.get(document.get_absolute_url(), {"q": "orchard"}).content.decode()

    assert "<h2>Green ones</h2>" in page
    assert "<strong><mark>orchard</mark></strong>" in page
    assert "<li>Granny Smith</li>" in page
    assert "<td>Fuji</td>" in page
    assert '<a href="https://example.org/care" rel="nofollow noopener noreferrer">link</a>' in page
    assert "**" not in page and "## " not in page


def test_the_title_heading_is_shown_once(staff_api, client):
    # The title comes from the first level-1 heading; the page shows it above the text, not twice.
    document = store(staff_api, "guide.md", GUIDE)
    page = client.get(document.get_absolute_url()).content.decode()
    article = page[page.index('<div class="markdown">') :]

    assert document.title == "Orchard guide" and page.count("Orchard guide</h1>") == 1
    assert "<h1>" not in article and "<h2>Green ones</h2>" in article
    # A level-1 heading that is not the title stays.
    other = store(staff_api, "other.md", "# First\n\ntext\n\n# Second\n\nmore\n")
    assert "<h1>Second</h1>" in client.get(other.get_absolute_url()).content.decode()


def test_the_document_page_renders_markdown_safely(staff_api, client):
    document = store(staff_api, "hostile.md", HOSTILE)

    page = client.get(document.get_absolute_url()).content.decode()
    article = page[page.index('<div class="markdown">') :]

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in article  # shown as text, never run
    assert "<script" not in article
    assert 'href="javascript' not in article
    assert "<img" not in article and "onerror=alert(3)" in article  # the raw tag is text
    assert "a tracking pixel" in article and "tracker.example" not in article  # alt text, no fetch
    assert '<a href="https://example.org/ok" rel="nofollow noopener noreferrer">a page</a>' in article


def test_an_edit_of_the_text_leaves_the_markdown_behind(staff_api, staff_client, client):
    document = store(staff_api, "guide.md", GUIDE)

    staff_api.patch(f"/api/v1/documents/{document.pk}", {"body": "Plain text now, about orchards."}, format="json")

    document.refresh_from_db()
    assert document.markdown == ""
    page = client.get(document.get_absolute_url()).content.decode()
    assert "<p>Plain text now, about orchards.</p>" in page


def test_a_markdown_file_too_long_to_parse_is_stored_as_written(staff_api, monkeypatch):
    monkeypatch.setattr(limits, "MAX_MARKDOWN_LINES", 5)
    document = store(staff_api, "long.md", GUIDE)

    assert document.body == GUIDE.strip()
    assert document.markdown == ""
