"""Uploads that could hurt the site, beyond tests/documents/test_rejected_files.py: huge line
counts and one huge line, HTML with too many tags, PDF bombs that unpack to megabytes of drawing
instructions, malformed PDFs; and an uploaded file is never served back from our origin (only its
extracted text is stored; MEDIA is not served)."""

from __future__ import annotations

import os
import tempfile
import uuid
import zlib

import pytest
from django.urls import Resolver404, resolve

from documents.models import LIBRARY, Chunk, Document
from documents.parsers import limits
from documents.parsers.limits import MAX_HTML_TAGS, MAX_PDF_CONTENT_BYTES, MAX_PDF_PAGE_CONTENT_BYTES
from tests.support.files import serialize_pdf, text_pdf, upload
from tests.support.processes import ROOT

pytestmark = pytest.mark.django_db

UPLOAD_URL = "/admin/documents/document/upload/"
LINES = 200_000
# However a file is laid out, no chunk the reranker gets may be longer than this many characters
# per token of the chunk budget (a natural chunk has about four).
MAX_CHARS_PER_CHUNK_TOKEN = 6


@pytest.fixture
def collection() -> str:
    return f"hazard-{uuid.uuid4().hex[:8]}"


def post(staff_client, collection: str, name: str, data: bytes):
    response = staff_client.post(UPLOAD_URL, {"files": [upload(name, data)], "collection": collection})
    assert response.status_code == 200
    (report,) = response.context["reports"]
    return report


def pdf_with_contents(*contents: bytes) -> bytes:
    """Return a real PDF whose pages draw the given (deflated) content streams."""
    pages = len(contents)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(pages))
    objects.append(b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages)
    font = 3 + 2 * pages
    for i, content in enumerate(contents):
        stream = zlib.compress(content, 9)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font, 4 + 2 * i)
        )
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return serialize_pdf(objects)


def text_operators(size: int) -> bytes:
    """Return about `size` bytes of text-showing instructions: what extraction reads slowly."""
    return b"BT /F1 12 Tf 72 720 Td " + b"(hello world) Tj " * (size // 17) + b"ET"


# --- huge line counts ---------------------------------------------------------------------------

HUGE = {
    "lines.txt": b"a short line of text\n" * LINES,
    "paragraphs.txt": b"word\n\n" * LINES,
    "list.md": b"# A long list\n" + b"- item\n" * LINES,
    "one-line.txt": b"Intro words. " + b"x" * 4_000_000 + b" outro words.",
    "base64.md": b"# Inline image\n![a](data:image/png;base64," + b"iVBORw0KGgo" * 200_000 + b")\nThe end.",
    "records.jsonl": b"\n" * LINES
    + b'{"title": "A", "text": "one"}\n'
    + b"\n" * LINES
    + b'{"title": "B", "text": "two"}\n',
    "lines.html": b"<html><body>" + b"<p>para</p>\n" * (MAX_HTML_TAGS // 2 - 10) + b"</body></html>",
}


@pytest.mark.parametrize("name", HUGE)
def test_it_stores_files_of_huge_line_counts_in_chunks_the_reranker_can_read(staff_client, collection, settings, name):
    report = post(staff_client, collection, name, HUGE[name])

    assert report.status == "created", report.message
    for document in Document.objects.filter(collection=collection):
        chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
        assert chunks, name
        longest = max(len(chunk.text) for chunk in chunks)
        assert longest <= settings.DOCUMENTS_CHUNK_TOKENS * MAX_CHARS_PER_CHUNK_TOKEN, f"a chunk of {longest:,} chars"
        assert all(document.body[chunk.start : chunk.end] == chunk.text for chunk in chunks)


def test_it_refuses_html_with_more_tags_than_it_parses_in_reasonable_time(staff_client, collection):
    data = b"<html><body>" + b"<p>para</p>\n" * MAX_HTML_TAGS + b"</body></html>"
    report = post(staff_client, collection, "tags.html", data)

    assert report.status == "rejected"
    assert f"the limit is {MAX_HTML_TAGS:,}; save it as text or split it" in report.message
    assert not Document.objects.filter(collection=collection).exists()


# --- PDF bombs and malformed PDFs ---------------------------------------------------------------

GOOD_PDF = text_pdf("Hello world", "Page two")
PDF_CASES = {
    # 25 KB on disk; its one page unpacks to 10 MB of text instructions (minutes to extract).
    "one-page-bomb.pdf": (
        lambda: pdf_with_contents(text_operators(10 * 1024 * 1024)),
        f"unpacks to 10.0 MB of drawing instructions; the limit is "
        f"{MAX_PDF_PAGE_CONTENT_BYTES // (1024 * 1024)}.0 MB a page (refused as a possible PDF bomb)",
    ),
    # Every page under the page limit, all of them together over the file's (blank instructions
    # here, so that the test itself stays quick).
    "many-page-bomb.pdf": (
        lambda: pdf_with_contents(
            *[b" " * (MAX_PDF_PAGE_CONTENT_BYTES - 1024)] * (MAX_PDF_CONTENT_BYTES // MAX_PDF_PAGE_CONTENT_BYTES + 1)
        ),
        "the PDF's pages unpack to more than 24.0 MB of drawing instructions (refused as a possible PDF bomb)",
    ),
    # A stream that inflates past pypdf's own cap (75 MB).
    "inflate-bomb.pdf": (lambda: pdf_with_contents(b" " * 80_000_000), "(refused as a possible PDF bomb)"),
    "truncated.pdf": (lambda: GOOD_PDF[: len(GOOD_PDF) // 2], "the PDF is damaged and cannot be read"),
    "page-cycle.pdf": (
        lambda: GOOD_PDF.replace(b"/Kids [3 0 R 5 0 R]", b"/Kids [2 0 R 3 0 R]"),
        "the PDF is damaged and cannot be read (Detected cyclic page references.)",
    ),
    "deep-nesting.pdf": (
        lambda: GOOD_PDF.replace(
            b"<< /Type /Catalog", b"<< /X " + b"[" * 100_000 + b"]" * 100_000 + b" /Type /Catalog"
        ),
        "the PDF is damaged and cannot be read",
    ),
}


@pytest.mark.parametrize("name", PDF_CASES)
def test_it_refuses_pdf_bombs_and_malformed_pdfs(staff_client, collection, name):
    make, message = PDF_CASES[name]
    report = post(staff_client, collection, name, make())

    assert report.status == "rejected"
    assert message in report.message, report.message
    assert not Document.objects.filter(collection=collection).exists()


def test_it_refuses_a_heavy_pdf_before_extracting_any_page(staff_client, collection, monkeypatch):
    """Every page's drawing instructions are sized before any text is extracted: a 63 KB PDF of
    heavy pages held a web thread for 79 s, reading page after page, before its refusal. With no
    time at all to extract (the budget set to 0 s), the refusal still names the heavy page."""
    monkeypatch.setattr(limits, "MAX_PDF_SECONDS", 0)
    heavy = text_operators(MAX_PDF_PAGE_CONTENT_BYTES + 1024)
    report = post(staff_client, collection, "heavy.pdf", pdf_with_contents(b"BT (one) Tj ET", b"BT (two) Tj ET", heavy))

    assert report.status == "rejected"
    assert "page 3 of the PDF unpacks to 1.0 MB of drawing instructions" in report.message, report.message


def test_it_stops_extracting_a_pdf_past_its_time_budget(staff_client, collection, monkeypatch):
    """Extraction stops after the page that passes the file's time budget (0 s here: the first)."""
    monkeypatch.setattr(limits, "MAX_PDF_SECONDS", 0)
    report = post(staff_client, collection, "slow.pdf", text_pdf("Page one", "Page two", "Page three"))

    assert report.status == "rejected"
    assert report.message == (
        "rejected: reading the PDF's text took more than 0 s (stopped after page 1 of 3); split it into smaller files"
    )
    assert not Document.objects.filter(collection=collection).exists()


def test_it_reads_a_pdf_whose_page_count_lies(staff_client, collection):
    report = post(staff_client, collection, "count.pdf", GOOD_PDF.replace(b"/Count 2", b"/Count 1000000"))

    assert report.status == "created", report.message
    assert Document.objects.get(collection=collection).body == "Hello world\n\nPage two"


# --- an upload is never served back -------------------------------------------------------------


def files_named(name: str) -> list[str]:
    """Return the files called `name` in the checkout (its data and virtual environment skipped)."""
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [s for s in subfolders if s not in {".venv", ".data", ".git", "node_modules"}]
        found += [os.path.join(folder, file) for file in files if file == name]
    return found


def test_it_stores_only_the_extracted_text_and_serves_no_uploaded_file(staff_client, client, settings):
    collection = LIBRARY  # the pages show the library's documents (the test's transaction undoes it)
    marker = uuid.uuid4().hex
    name = f"page-{marker}.html"
    # Over FILE_UPLOAD_MAX_MEMORY_SIZE, so Django spools it to a temporary file on disk.
    padding = b"<!-- " + b"p" * (settings.FILE_UPLOAD_MAX_MEMORY_SIZE + 1024) + b" -->"
    raw = (
        f"<html><head><title>Upload {marker}</title><script>window.pwned='{marker}'</script></head>"
        f'<body><p>Visible text {marker}.</p><img src=x onerror="alert(1)"></body></html>'
    ).encode() + padding
    report = post(staff_client, collection, name, raw)

    assert report.status == "created", report.message
    document = Document.objects.get(collection=collection, source=name)
    assert (document.title, document.body, document.source) == (f"Upload {marker}", f"Visible text {marker}.", name)
    assert files_named(name) == [], "the uploaded file was written into the checkout"
    spooled = [f for f in os.listdir(tempfile.gettempdir()) if f.endswith(".upload.html")]
    for leftover in spooled:
        path = os.path.join(tempfile.gettempdir(), leftover)
        with open(path, "rb") as handle:
            assert marker.encode() not in handle.read(), f"{path}: the upload's temporary file was left behind"
    for url in (settings.MEDIA_URL or "/media/", "/media/", "/uploads/", "/static/"):
        path = "/" + f"{url}/{name}".strip("/")
        with pytest.raises(Resolver404):
            resolve(path)
        assert client.get(path).status_code == 404, path
    for url in (
        f"/documents/{document.pk}",
        f"/api/v1/documents/{document.pk}",
        f"/admin/documents/document/{document.pk}/change/",
    ):
        response = staff_client.get(url)
        assert response.status_code == 200, url
        content = response.content
        assert f"window.pwned='{marker}'".encode() not in content, url
        assert b'onerror="alert(1)"' not in content, url
        assert b"p" * 1000 not in content, url
