"""Word .docx: refuse zip bombs, read the text as a bounded stream (docx_text), title it by its
properties or first line. Pure, no ORM."""

from __future__ import annotations

import io
import zipfile

from documents.inputs import DocumentInput, first_line
from documents.parsers import limits
from documents.parsers.common import ParseError, document, format_size, magic_name, short
from documents.parsers.docx_text import MAIN_PART, DocxLimit, DocxUnreadable, docx_text, docx_title


def parse_docx(data: bytes, source: str) -> DocumentInput:
    """Return the document of a .docx file's bytes."""
    if not data.startswith(b"PK\x03\x04"):
        described = magic_name(data) or "text or other data"
        raise ParseError(f"the file is named .docx but is not a Word document (not a zip archive; it is {described})")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise ParseError(f"the file is named .docx but is a damaged zip archive ({short(error)})") from None
    if MAIN_PART not in archive.namelist():
        raise ParseError("the file is named .docx but is a zip archive without word/document.xml, not a Word document")
    _refuse_zip_bomb(members)
    # The sizes above are what the archive claims; reading itself stops at what it unpacks.
    try:
        parts = docx_text(
            archive,
            max_chars=limits.MAX_BODY_CHARS,
            max_xml_bytes=limits.MAX_DOCX_XML_BYTES,
            max_block_bytes=limits.MAX_DOCX_BLOCK_XML_BYTES,
        )
    except DocxLimit as limit:
        raise ParseError(f"the Word document is too large: {limit}; reading stopped there; split it") from None
    except DocxUnreadable as error:
        raise ParseError(f"the Word document is damaged and cannot be read ({short(error)})") from None
    body = "\n".join(part for part in parts if part.strip())
    if not body.strip():
        raise ParseError("the Word document has no text")
    title = docx_title(archive, max_xml_bytes=limits.MAX_DOCX_CORE_BYTES)
    return document(title or first_line(body), body, source)


def _refuse_zip_bomb(members: list[zipfile.ZipInfo]) -> None:
    unpacked = sum(member.file_size for member in members)
    if unpacked > limits.MAX_UNZIPPED_BYTES:
        raise ParseError(
            f"the Word document would unpack to {format_size(unpacked)}; the limit is "
            f"{format_size(limits.MAX_UNZIPPED_BYTES)} (refused as a possible zip bomb)"
        )
    for member in members:
        if member.file_size < limits.RATIO_CHECK_MIN_BYTES:
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > limits.MAX_COMPRESSION_RATIO:
            raise ParseError(
                f"the Word document's part {member.filename} is compressed {ratio:,.0f} to 1; more than "
                f"{limits.MAX_COMPRESSION_RATIO} to 1 is refused as a possible zip bomb"
            )
