"""What every format's parser shares: the refusal, the size rules, sniffing a file's real type and
building a document of its text. Pure, no ORM."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from documents.inputs import DocumentInput
from documents.parsers import limits

# Problems listed in one message before "and N more".
MAX_PROBLEMS_SHOWN = 5
# Magic numbers of formats people upload by mistake, for a message that says what the file is.
MAGIC = [
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a zip archive (e.g. .docx, .xlsx or .zip)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style .doc/.xls or password-protected Office file"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"MZ", "a Windows program"),
]


class ParseError(Exception):
    """A file that cannot be read, with a message for the person who sent it."""


@dataclass
class ParsedFile:
    items: list[DocumentInput]
    # One message per unreadable record of a JSON / JSON Lines file; the rest still go in.
    problems: list[str] = field(default_factory=list)


def upload_size_problem(size: int) -> str:
    """Return why a file of `size` bytes is too big to upload ("" when it is not)."""
    limit = settings.DOCUMENTS_MAX_UPLOAD_BYTES
    return size_refusal(size, limit) if size > limit else ""


def size_refusal(size: int, limit: int) -> str:
    """Return why a file of `size` bytes is refused, in units that show it is over `limit`."""
    shown, allowed = format_size(size), format_size(limit)
    if shown == allowed:  # "20.0 MB; the limit is 20.0 MB" hides by how much: count bytes
        shown, allowed = f"{size:,} bytes", f"{limit:,} bytes ({allowed})"
    return f"the file is {shown}; the limit is {allowed}"


def format_size(size: int) -> str:
    """Return a byte count for people: "512 bytes", "7.8 KB", "20.0 MB"."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def summarize_problems(problems: list[str]) -> str:
    """Return the problems as one line, the first few in full."""
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = len(problems) - MAX_PROBLEMS_SHOWN
    return f"{shown}; and {more} more" if more > 0 else shown


def document(title: str, body: str, source: str, **extra: object) -> DocumentInput:
    """Return the document of a file's text; raise ParseError when the text is over the limit."""
    if len(body) > limits.MAX_BODY_CHARS:
        raise ParseError(
            f"the text is {len(body):,} characters long; the limit is {limits.MAX_BODY_CHARS:,}; split the file"
        )
    return DocumentInput(title=" ".join(title.split()), body=body, source=source, **extra)


def magic_name(data: bytes) -> str | None:
    """Return what the bytes' magic number says the file is (None when it says nothing)."""
    for magic, description in MAGIC:
        if data.startswith(magic):
            return description
    # The PDF header may follow a little junk; readers look at the first kilobyte.
    if b"%PDF-" in data[:1024]:
        return "a PDF document"
    return None


def short(error: BaseException) -> str:
    """Return a library's error message short enough to show in a report."""
    message = str(error) or type(error).__name__
    return message if len(message) <= 160 else message[:157] + "..."
