"""Real files built in memory for the ingest tests (PDFs, Word documents, zip bombs), and the
rows they leave behind."""

from __future__ import annotations

import io
import zipfile

import docx
from django.core.files.uploadedfile import SimpleUploadedFile
from pypdf import PdfWriter

from documents.models import Chunk, Document


def text_pdf(*pages: str, title: str | None = None) -> bytes:
    """Return a real PDF whose pages show the given lines of text (Helvetica, hand-written objects)."""
    page_ids = [3 + 2 * i for i in range(len(pages))]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % n for n in page_ids) + b"] /Count %d >>" % len(pages),
    ]
    font_id = 3 + 2 * len(pages)
    for index, text in enumerate(pages):
        lines = [line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in text.split("\n")]
        stream = ("BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET").encode()
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font_id, page_ids[index] + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    trailer_extra = b""
    if title is not None:
        objects.append(b"<< /Title (" + title.encode("latin-1") + b") >>")
        trailer_extra = b" /Info %d 0 R" % len(objects)
    return serialize_pdf(objects, trailer_extra)


def serialize_pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """Return a PDF file of numbered objects (the first is the catalog), with its xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R" % (len(objects) + 1) + trailer_extra + b" >>\n")
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def blank_pdf(pages: int = 1) -> bytes:
    """Return a real PDF of blank pages: what a scan without OCR looks like to a text extractor."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted_pdf(data: bytes, *, user_password: str = "secret") -> bytes:  # noqa: S107 a test file's password
    """Return `data` (a PDF) encrypted with RC4 (pypdf needs no extra package for it)."""
    writer = PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def word_document(*paragraphs: str, table: list[list[str]] | None = None, title: str = "") -> bytes:
    """Return a real .docx made by python-docx."""
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for row, values in zip(grid.rows, table, strict=True):
            for cell, value in zip(row.cells, values, strict=True):
                cell.text = value
    document.core_properties.title = title
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bomb_docx(member_megabytes: int) -> bytes:
    """Return a zip that passes for a .docx but holds a member of `member_megabytes` MB of zeros."""
    out = io.BytesIO()
    megabyte = b"\0" * (1024 * 1024)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        with archive.open("word/media/padding.bin", "w", force_zip64=True) as member:
            for _ in range(member_megabytes):
                member.write(megabyte)
    return out.getvalue()


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def rows_in(collection: str) -> tuple[int, int]:
    """Return (documents, chunks) stored in `collection` (two queries)."""
    return (
        Document.objects.filter(collection=collection).count(),
        Chunk.objects.filter(document__collection=collection).count(),
    )
