"""PDF: the text of every page, bounded against PDF bombs, titled by its properties or first line.
Pure, no ORM."""

from __future__ import annotations

import io
import time

from documents.inputs import DocumentInput, clean_text, first_line
from documents.parsers import limits
from documents.parsers.common import ParseError, document, format_size, magic_name, short

PASSWORD_PROTECTED = "the PDF is password-protected; remove the password and upload it again"  # noqa: S105 (a message, not a password)


def parse_pdf(data: bytes, source: str) -> DocumentInput:
    """Return the document of a PDF file's bytes."""
    if b"%PDF-" not in data[:1024]:
        described = magic_name(data) or "text or other data"
        raise ParseError(f"the file is named .pdf but is not a PDF (it is {described})")
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are encrypted only against editing, with an empty password to open.
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError):
                opened = 0
            if not opened:
                raise ParseError(PASSWORD_PROTECTED)
        page_count = len(reader.pages)
    except ParseError:
        raise
    except FileNotDecryptedError:
        raise ParseError(PASSWORD_PROTECTED) from None
    except Exception as error:  # pypdf raises PdfReadError and many other kinds on broken files
        raise ParseError(f"the PDF is damaged and cannot be read ({short(error)})") from None
    if page_count > limits.MAX_PDF_PAGES:
        raise ParseError(f"the PDF has {page_count:,} pages; the limit is {limits.MAX_PDF_PAGES:,}; split it")
    _refuse_heavy_pages(reader)
    texts: list[str] = []
    total = 0
    failures = 0
    started = time.monotonic()
    for number, page in enumerate(reader.pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception:  # one broken page should not lose the others
            failures += 1
            continue
        total += len(text)
        if total > limits.MAX_BODY_CHARS:
            raise ParseError(f"the PDF holds more than {limits.MAX_BODY_CHARS:,} characters of text; split it")
        texts.append(clean_text(text))
        if number < page_count and time.monotonic() - started > limits.MAX_PDF_SECONDS:
            raise ParseError(
                f"reading the PDF's text took more than {limits.MAX_PDF_SECONDS:g} s (stopped after page {number} "
                f"of {page_count}); split it into smaller files"
            )
    if page_count and failures == page_count:
        raise ParseError("the PDF is damaged: no page could be read")
    body = "\n\n".join(text.strip() for text in texts if text.strip())
    if not body:
        raise ParseError("the PDF has no extractable text (it may be a scanned image; run OCR on it first)")
    title = _pdf_title(reader) or first_line(body)
    return document(title, body, source, metadata={"pages": page_count})


def _refuse_heavy_pages(reader: object) -> None:
    """Refuse the file before extracting any text when a page, or all of them, unpack to more
    drawing instructions than extraction reads in reasonable time (unpacking alone is fast)."""
    content_bytes = 0
    for number, page in enumerate(reader.pages, start=1):
        size = _pdf_content_size(page, number)
        if size > limits.MAX_PDF_PAGE_CONTENT_BYTES:
            raise ParseError(
                f"page {number} of the PDF unpacks to {format_size(size)} of drawing instructions; the limit "
                f"is {format_size(limits.MAX_PDF_PAGE_CONTENT_BYTES)} a page (refused as a possible PDF bomb)"
            )
        content_bytes += size
        if content_bytes > limits.MAX_PDF_CONTENT_BYTES:
            raise ParseError(
                f"the PDF's pages unpack to more than {format_size(limits.MAX_PDF_CONTENT_BYTES)} of drawing "
                "instructions (refused as a possible PDF bomb); split it"
            )


def _pdf_content_size(page: object, number: int) -> int:
    """Return the unpacked size of a page's drawing instructions (0 when they cannot be read)."""
    from pypdf.errors import LimitReachedError

    try:
        contents = page.get_contents()
        return len(contents.get_data()) if contents is not None else 0
    except LimitReachedError:
        raise ParseError(
            f"page {number} of the PDF unpacks to more than pypdf's limit (refused as a possible PDF bomb)"
        ) from None
    except Exception:  # a broken page: extracting its text fails too, and is counted there
        return 0


def _pdf_title(reader: object) -> str:
    try:
        metadata = reader.metadata
        title = metadata.title if metadata else None
    except Exception:  # a broken info dictionary only costs the title
        return ""
    return str(title).strip() if title else ""
