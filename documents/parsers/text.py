"""Plain text and Markdown: refuse binary data named as text, decode the bytes, find the title.
Pure, no ORM."""

from __future__ import annotations

import codecs
import re

from documents.inputs import DocumentInput, clean_text
from documents.markdown import markdown_text
from documents.parsers import limits
from documents.parsers.common import ParseError, document, magic_name

TEXT_EXTENSIONS = {".txt": "text", ".md": "Markdown", ".html": "HTML", ".htm": "HTML"}
CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0c\x1b")
# A GB18030 decode only counts when most of its non-ASCII characters are common Chinese (in
# GB2312); otherwise a Latin-1 file would "decode" into nonsense ideographs.
MIN_GB2312_SHARE = 0.9
# The title of a Markdown file too long to parse: its first `# heading` line.
MARKDOWN_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def parse_text(text: str, source: str, *, markdown: bool) -> DocumentInput:
    """Return the document of a text file's text. A Markdown file's body is its text without the
    markup (documents.markdown), its source kept to show it rendered; its first level-1 heading
    titles it."""
    if not markdown:
        return document("", text, source)
    if len(text) > limits.MAX_BODY_CHARS or text.count("\n") > limits.MAX_MARKDOWN_LINES:
        # Too long to parse in reasonable time: stored as plain text, as written (or refused for
        # its length by document()).
        heading = MARKDOWN_TITLE.search(text)
        return document(heading.group(1) if heading else "", text, source)
    converted = markdown_text(text)
    if not converted.text:
        raise ParseError("the Markdown file has no text")
    return document(converted.title, converted.text, source, markdown=text)


def refuse_binary(data: bytes, extension: str, kind: str) -> None:
    """Raise ParseError when a file named as text (`kind`) holds another format or binary data."""
    described = magic_name(data)
    if described is not None:
        raise ParseError(f"the file is named {extension} but is {described}, not {kind}")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return  # UTF-16 text is full of NUL bytes by design.
    sample = data[: limits.SNIFF_BYTES]
    controls = sum(sample.count(byte) for byte in CONTROL_BYTES)
    if controls > max(limits.MAX_STRAY_CONTROLS, limits.MAX_CONTROL_SHARE * len(sample)):
        raise ParseError(f"the file is named {extension} but looks like binary data, not {kind}")


def decode_text(data: bytes) -> str:
    """Return the text of `data` (UTF-8, UTF-8 with BOM, UTF-16 with BOM or GB18030 Chinese).

    Stray NUL characters are dropped and line endings become "\\n". Raises ParseError when no
    encoding decodes the bytes cleanly.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise ParseError(f"the file starts with a UTF-16 mark but is not valid UTF-16 ({error.reason})") from None
    else:
        data = data.replace(b"\x00", b"")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            text = _decode_gb18030(data)
            if text is None:
                raise ParseError(
                    f"the file is not valid UTF-8 (bad byte 0x{data[error.start]:02x} at position {error.start}) "
                    "nor GB18030 Chinese; save it as UTF-8 and upload it again"
                ) from None
    return clean_text(text).replace("\r\n", "\n").replace("\r", "\n")


def _decode_gb18030(data: bytes) -> str | None:
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return None
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    if not non_ascii:
        return text
    # Everyday Chinese sits in the GB2312 subset; Latin-1 bytes that happen to pair up decode
    # into rare GBK ideographs outside it ("héllo" -> "h閘lo").
    outside = text.encode("gb2312", errors="replace").count(b"?") - text.count("?")
    if (non_ascii - outside) / non_ascii < MIN_GB2312_SHARE:
        return None
    return text
