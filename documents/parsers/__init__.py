"""Turn an uploaded file into documents: sniff the real type, decode, extract text. Pure, no ORM.

The file's type is read from its bytes; the name only says which type the sender meant, and a
mismatch is refused with a message that names both. One module per format (text and Markdown,
html, pdf, docx with docx_text, json for JSON and JSON Lines); `limits` holds every limit that
guards the web process against one hostile or broken file. Callers import from here.
"""

from __future__ import annotations

from pathlib import PurePath

from documents.inputs import DocumentInput
from documents.parsers import limits
from documents.parsers.common import (
    ParsedFile,
    ParseError,
    format_size,
    size_refusal,
    summarize_problems,
    upload_size_problem,
)
from documents.parsers.docx import parse_docx
from documents.parsers.html import parse_html
from documents.parsers.json import JSON_EXTENSIONS, parse_json
from documents.parsers.pdf import parse_pdf
from documents.parsers.text import TEXT_EXTENSIONS, decode_text, parse_text, refuse_binary

ACCEPTED_EXTENSIONS = (".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".json", ".jsonl")

__all__ = [
    "ACCEPTED_EXTENSIONS",
    "ParseError",
    "ParsedFile",
    "decode_text",
    "format_size",
    "limits",
    "parse_file",
    "parse_file_lenient",
    "size_refusal",
    "summarize_problems",
    "upload_size_problem",
]


def parse_file(name: str, data: bytes) -> list[DocumentInput]:
    """Return the documents in the file; raise ParseError when any part of it cannot be read."""
    parsed = parse_file_lenient(name, data)
    if parsed.problems:
        raise ParseError(summarize_problems(parsed.problems))
    return parsed.items


def parse_file_lenient(name: str, data: bytes) -> ParsedFile:
    """Return the readable documents and a message per unreadable record.

    Raises ParseError when the file as a whole cannot be read (wrong type, too big, corrupt).
    """
    extension = PurePath(name).suffix.lower()
    if extension not in ACCEPTED_EXTENSIONS:
        shown = f"'{extension}'" if extension else "without an extension"
        raise ParseError(f"unsupported file type {shown}; accepted: {', '.join(ACCEPTED_EXTENSIONS)}")
    if not data:
        raise ParseError("the file is empty")
    too_big = upload_size_problem(len(data))
    if too_big:
        raise ParseError(too_big)
    source = PurePath(name).name
    if extension == ".pdf":
        return ParsedFile([parse_pdf(data, source)])
    if extension == ".docx":
        return ParsedFile([parse_docx(data, source)])
    refuse_binary(data, extension, TEXT_EXTENSIONS.get(extension) or JSON_EXTENSIONS[extension])
    text = decode_text(data)
    if extension in JSON_EXTENSIONS:
        return parse_json(text, source, lines=extension == ".jsonl")
    if not text.strip():
        raise ParseError(f"the {TEXT_EXTENSIONS[extension]} file has no text")
    if extension in (".html", ".htm"):
        return ParsedFile([parse_html(text, source)])
    return ParsedFile([parse_text(text, source, markdown=extension == ".md")])
