"""A document before it is stored, and the text rules every way in shares: pure, no ORM.

The parsers build `DocumentInput`s, documents.services validates and stores them, and both clean
text and derive titles with the functions here, so a file, the admin and the REST API agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from documents.models import Document

# A title made from the body's first line stays short enough to read in a result list.
DERIVED_TITLE_CHARS = 120
# The title of a document whose body has no line to take one from.
UNTITLED = "Untitled"
# C0 control characters but tab, newline and carriage return, and DEL: they carry no meaning
# in a query (documents keep them, NUL aside: PostgreSQL refuses only NUL).
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class IngestError(Exception):
    """A document that cannot go into the library, with a message for the person who sent it."""


@dataclass
class DocumentInput:
    title: str
    body: str
    language: str | None = None
    source: str = ""
    external_id: str = ""
    metadata: dict = field(default_factory=dict)
    markdown: str = ""  # the Markdown source `body` is the text of (documents.markdown)

    @classmethod
    def of(cls, document: Document) -> DocumentInput:
        """Return the input that `document` (stored or not) holds, to validate or store it again."""
        return cls(
            title=document.title,
            body=document.body,
            language=document.language or None,
            source=document.source,
            external_id=document.external_id,
            metadata=document.metadata,
            markdown=document.markdown,
        )


def clean_text(value: str, *, controls: str | None = None) -> str:
    """Return text PostgreSQL accepts: no NUL characters, no lone surrogates.

    With `controls`, every control character but tab and line ends (NUL included) becomes that
    string instead, as a query needs.
    """
    value = value.replace("\x00", "") if controls is None else CONTROL_CHARS.sub(controls, value)
    return value.encode("utf-8", "replace").decode("utf-8")


def first_line(text: str) -> str:
    """Return the first line of `text` that is not blank, whitespace collapsed and shortened
    to DERIVED_TITLE_CHARS ("" when there is none): the title of a document without one."""
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())[:DERIVED_TITLE_CHARS]
    return ""


def derived_title(body: str) -> str:
    """Return the title a document without one is shown with: its first line, or "Untitled"."""
    return first_line(body) or UNTITLED
