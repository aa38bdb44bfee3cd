"""Every kind of bad file is refused alone: a clear message, no rows left, the others stored."""

from __future__ import annotations

import html
import io
import zipfile

import pytest

from documents.models import Chunk, Document
from documents.parsers import limits
from tests.support.files import (
    blank_pdf,
    encrypted_pdf,
    rows_in,
    text_pdf,
    upload,
    zip_bomb_docx,
)

pytestmark = pytest.mark.django_db

UPLOAD_URL = "/admin/documents/document/upload/"
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
OLE_HEADER = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def zip_with(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def lower_limit(name: str, value: int):
    def apply(settings, monkeypatch) -> None:
        monkeypatch.setattr(limits, name, value)

    return apply


def lower_upload_limit(settings, monkeypatch) -> None:
    settings.DOCUMENTS_MAX_UPLOAD_BYTES = 4096


CASES = [
    pytest.param("empty.txt", lambda: b"", "the file is empty", None, id="empty"),
    pytest.param("blank.txt", lambda: b" \n\t \n", "the text file has no text", None, id="whitespace-only"),
    pytest.param(
        "big.txt", lambda: b"word " * 2000, "the file is 9.8 KB; the limit is 4.0 KB", lower_upload_limit, id="too-big"
    ),
    pytest.param("notes.txt", lambda: bytes(range(256)) * 8, "named .txt but looks like binary data", None, id="nul"),
    pytest.param(
        "latin.txt",
        lambda: "Crème brûlée, s'il vous plaît. Très bien.".encode("latin-1"),
        "not valid UTF-8 (bad byte 0xe8 at position 2) nor GB18030",
        None,
        id="invalid-utf8",
    ),
    pytest.param(
        "report.txt", lambda: text_pdf("Quarterly report"), "named .txt but is a PDF document", None, id="txt-is-pdf"
    ),
    pytest.param(
        "page.html", lambda: PNG_HEADER + bytes(200), "named .html but is a PNG image", None, id="html-is-png"
    ),
    pytest.param(
        "empty.html", lambda: b"<html><script>var a = 1;</script></html>", "no visible text", None, id="html-no-text"
    ),
    pytest.param("fake.pdf", lambda: b"just some words", "named .pdf but is not a PDF", None, id="pdf-not-pdf"),
    pytest.param(
        "broken.pdf",
        lambda: b"%PDF-1.4\n1 0 obj << /Type",
        "the PDF is damaged and cannot be read",
        None,
        id="pdf-corrupt",
    ),
    pytest.param(
        "locked.pdf",
        lambda: encrypted_pdf(text_pdf("Secret plans")),
        "the PDF is password-protected",
        None,
        id="pdf-encrypted",
    ),
    pytest.param(
        "scan.pdf", lambda: blank_pdf(3), "no extractable text (it may be a scanned image", None, id="pdf-scanned"
    ),
    pytest.param(
        "bomb.pdf",
        lambda: blank_pdf(2001),
        "the PDF has 2,001 pages; the limit is 2,000",
        None,
        id="pdf-too-many-pages",
    ),
    pytest.param(
        "long.pdf",
        lambda: text_pdf("a line of plain words, " * 4),
        "more than 40 characters of text",
        lower_limit("MAX_BODY_CHARS", 40),
        id="pdf-too-much-text",
    ),
    pytest.param(
        "letter.docx", lambda: b"Dear Sir", "named .docx but is not a Word document (not a zip", None, id="docx-not-zip"
    ),
    pytest.param(
        "old.docx", lambda: OLE_HEADER + bytes(512), "old-style .doc/.xls or password-protected", None, id="docx-ole"
    ),
    pytest.param(
        "sheet.docx",
        lambda: zip_with({"xl/workbook.xml": b"<workbook/>"}),
        "without word/document.xml",
        None,
        id="docx-wrong-zip",
    ),
    pytest.param(
        "damaged.docx",
        lambda: zip_with({"[Content_Types].xml": b"<Types", "word/document.xml": b"<w:document"}),
        "the Word document is damaged",
        None,
        id="docx-corrupt",
    ),
    pytest.param(
        "ratio.docx", lambda: zip_bomb_docx(5), "to 1 is refused as a possible zip bomb", None, id="zip-bomb-ratio"
    ),
    pytest.param(
        "huge.docx",
        lambda: zip_bomb_docx(101),
        "would unpack to 101.0 MB; the limit is 100.0 MB",
        None,
        id="zip-bomb-size",
    ),
    pytest.param(
        "items.json",
        lambda: b'[\n  {"title": "a", "content": "b"},\n  {"title": "c" "content": "d"}\n]',
        "invalid JSON at line 3, column 17: Expecting ',' delimiter",
        None,
        id="json-syntax",
    ),
    pytest.param(
        "items.json",
        lambda: b'[{"title": "only a title"}]',
        "item 1: no text: the object needs a `content`, `text` or `body` field",
        None,
        id="json-no-text",
    ),
    pytest.param(
        "slides.pptx", lambda: b"PK\x03\x04", "unsupported file type '.pptx'; accepted: .txt, .md", None, id="unknown"
    ),
    pytest.param(
        "long.txt",
        lambda: b"word " * 50,
        "the text is 250 characters long; the limit is 100",
        lower_limit("MAX_BODY_CHARS", 100),
        id="body-too-long",
    ),
]


@pytest.mark.parametrize(("name", "make", "message", "prepare"), CASES)
def test_it_rejects_the_bad_file_and_keeps_the_others(
    staff_client, collection, settings, monkeypatch, name, make, message, prepare
):
    if prepare is not None:
        prepare(settings, monkeypatch)
    files = [
        upload("first.txt", b"Good one. Alpha."),
        upload(name, make()),
        upload("second.md", b"# Beta\nGood two."),
    ]
    response = staff_client.post(UPLOAD_URL, {"files": files, "collection": collection})

    assert response.status_code == 200
    first, bad, second = response.context["reports"]
    assert bad.status == "rejected"
    assert bad.created == 0
    assert message in bad.message, bad.message
    assert message in html.unescape(response.content.decode())
    assert (first.status, second.status) == ("created", "created")
    kept = Document.objects.filter(collection=collection)
    assert sorted(kept.values_list("source", flat=True)) == ["first.txt", "second.md"]
    assert rows_in(collection) == (2, Chunk.objects.filter(document__in=kept).count())
    assert not Chunk.objects.filter(document__collection=collection).exclude(document__in=kept).exists()
