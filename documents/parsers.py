"""Turn an uploaded file into documents: sniff the real type, decode, extract text. Pure, no ORM.

The file's type is read from its bytes; the name only says which type the sender meant, and a
mismatch is refused with a message that names both. Every limit below guards the web process
against one hostile or broken file.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath

from django.conf import settings

from documents.docx_text import MAIN_PART, DocxLimit, DocxUnreadable, docx_text, docx_title
from documents.services import DocumentInput
from searchsite.json_limits import MAX_JSON_DEPTH, nesting_problem

# The longest body one document may have: a big book; beyond it chunks and index get unwieldy.
MAX_BODY_CHARS = 5_000_000
# A PDF bomb can declare endless pages; a real book rarely passes this.
MAX_PDF_PAGES = 2_000
# Text extraction reads a page's drawing instructions in Python (about 2 s per MB here): a 25 KB
# file whose one page unpacks to 10 MB of them kept a web process busy for 3.5 minutes. A text
# page holds tens of KB; refuse a page above the first limit and a file above the second.
MAX_PDF_PAGE_CONTENT_BYTES = 2 * 1024 * 1024
MAX_PDF_CONTENT_BYTES = 24 * 1024 * 1024
# Building the tree of an HTML file costs about 25 µs per tag (5 s for 200,000 one-line
# paragraphs); a 20 MB file of them would hold a web process for minutes.
MAX_HTML_TAGS = 100_000
# A .docx is a zip: refuse it before extracting when it would unpack to more than this...
MAX_UNZIPPED_BYTES = 100 * 1024 * 1024
# ...or when a large member compresses better than any real document does (a zip bomb).
MAX_COMPRESSION_RATIO = 100
# Members smaller than this cannot hurt, however well they compress.
RATIO_CHECK_MIN_BYTES = 1024 * 1024
# The XML of a .docx's text part read at most, however well it is compressed (reading costs
# about 0.1 s per MB here). 1,000,000 characters in runs of 40 take 2.4 MB of it (python-docx),
# so the MAX_BODY_CHARS of text fit in about 12 MB, with room for heavier formatting.
MAX_DOCX_XML_BYTES = 32 * 1024 * 1024
# A document's properties (its title) are a few KB.
MAX_DOCX_CORE_BYTES = 1024 * 1024
# Control bytes (NUL and other C0 codes besides tab/newline/CR/FF/ESC) beyond both of these make
# a "text" file binary; a handful of stray NULs in a real text file are only stripped.
MAX_CONTROL_SHARE = 0.01
MAX_STRAY_CONTROLS = 8
# Bytes looked at when sniffing for binary content.
SNIFF_BYTES = 64 * 1024
# A GB18030 decode only counts when most of its non-ASCII characters are common Chinese (in
# GB2312); otherwise a Latin-1 file would "decode" into nonsense ideographs.
MIN_GB2312_SHARE = 0.9
TOO_DEEP = f"the JSON nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects"
# Problems listed in one message before "and N more".
MAX_PROBLEMS_SHOWN = 5

TEXT_EXTENSIONS = {".txt": "text", ".md": "Markdown", ".html": "HTML", ".htm": "HTML"}
JSON_EXTENSIONS = {".json": "JSON", ".jsonl": "JSON Lines"}
ACCEPTED_EXTENSIONS = (".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".json", ".jsonl")

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
CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0c\x1b")
JSON_TEXT_FIELDS = ("content", "text", "body")
JSON_KNOWN_FIELDS = {"title", *JSON_TEXT_FIELDS, "language", "source", "url", "id", "_id", "metadata"}
LANGUAGE_ALIASES = {"en": "en", "english": "en", "zh": "zh", "chinese": "zh", "cn": "zh", "mixed": "mixed"}
HTML_DROPPED_TAGS = ["script", "style", "noscript", "template", "iframe", "object", "svg", "head"]
HTML_BLOCK_TAGS = [
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p",
    "pre", "section", "table", "td", "th", "tr", "ul",
]  # fmt: skip
MARKDOWN_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


class ParseError(Exception):
    """A file that cannot be read, with a message for the person who sent it."""


@dataclass
class ParsedFile:
    items: list[DocumentInput]
    # One message per unreadable record of a JSON / JSON Lines file; the rest still go in.
    problems: list[str] = field(default_factory=list)


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
    limit = settings.DOCUMENTS_MAX_UPLOAD_BYTES
    if len(data) > limit:
        raise ParseError(size_refusal(len(data), limit))
    source = PurePath(name).name
    if extension == ".pdf":
        return ParsedFile([_parse_pdf(data, source)])
    if extension == ".docx":
        return ParsedFile([_parse_docx(data, source)])
    _refuse_binary(data, extension)
    text = decode_text(data)
    if extension in JSON_EXTENSIONS:
        return _parse_json(text, source, lines=extension == ".jsonl")
    if not text.strip():
        raise ParseError(f"the {TEXT_EXTENSIONS[extension]} file has no text")
    if extension in (".html", ".htm"):
        return ParsedFile([_parse_html(text, source)])
    title = ""
    if extension == ".md":
        heading = MARKDOWN_TITLE.search(text)
        title = heading.group(1) if heading else ""
    return ParsedFile([_document(title, text, source)])


def summarize_problems(problems: list[str]) -> str:
    """Return the problems as one line, the first few in full."""
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = len(problems) - MAX_PROBLEMS_SHOWN
    return f"{shown}; and {more} more" if more > 0 else shown


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


def _document(title: str, body: str, source: str, **extra: object) -> DocumentInput:
    if len(body) > MAX_BODY_CHARS:
        raise ParseError(f"the text is {len(body):,} characters long; the limit is {MAX_BODY_CHARS:,}; split the file")
    return DocumentInput(title=" ".join(title.split()), body=body, source=source, **extra)


def _magic_name(data: bytes) -> str | None:
    for magic, description in MAGIC:
        if data.startswith(magic):
            return description
    # The PDF header may follow a little junk; readers look at the first kilobyte.
    if b"%PDF-" in data[:1024]:
        return "a PDF document"
    return None


def _refuse_binary(data: bytes, extension: str) -> None:
    kind = TEXT_EXTENSIONS.get(extension) or JSON_EXTENSIONS[extension]
    described = _magic_name(data)
    if described is not None:
        raise ParseError(f"the file is named {extension} but is {described}, not {kind}")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return  # UTF-16 text is full of NUL bytes by design.
    sample = data[:SNIFF_BYTES]
    controls = sum(sample.count(byte) for byte in CONTROL_BYTES)
    if controls > max(MAX_STRAY_CONTROLS, MAX_CONTROL_SHARE * len(sample)):
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
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")


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


# --- HTML -----------------------------------------------------------------------------------


def _parse_html(text: str, source: str) -> DocumentInput:
    from bs4 import BeautifulSoup, Comment

    tags = text.count("<")
    if tags > MAX_HTML_TAGS:
        raise ParseError(
            f"the HTML file has {tags:,} tags; the limit is {MAX_HTML_TAGS:,}; save it as text or split it"
        )
    soup = BeautifulSoup(text, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(HTML_DROPPED_TAGS):
        tag.decompose()
    for comment in soup.find_all(string=lambda node: isinstance(node, Comment)):
        comment.extract()
    if not title and (heading := soup.find("h1")):
        title = heading.get_text(" ", strip=True)
    # Block elements end a line, so paragraphs stay apart while inline markup joins its words.
    for tag in soup.find_all(HTML_BLOCK_TAGS):
        tag.append("\n")
    lines = (" ".join(line.split()) for line in soup.get_text().splitlines())
    body = "\n".join(line for line in lines if line)
    if not body:
        raise ParseError("the HTML file has no visible text")
    return _document(title, body, source)


# --- PDF ------------------------------------------------------------------------------------


def _parse_pdf(data: bytes, source: str) -> DocumentInput:
    if b"%PDF-" not in data[:1024]:
        described = _magic_name(data) or "text or other data"
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
                raise ParseError("the PDF is password-protected; remove the password and upload it again")
        page_count = len(reader.pages)
    except ParseError:
        raise
    except FileNotDecryptedError:
        raise ParseError("the PDF is password-protected; remove the password and upload it again") from None
    except Exception as error:  # pypdf raises PdfReadError and many other kinds on broken files
        raise ParseError(f"the PDF is damaged and cannot be read ({_short(error)})") from None
    if page_count > MAX_PDF_PAGES:
        raise ParseError(f"the PDF has {page_count:,} pages; the limit is {MAX_PDF_PAGES:,}; split it")
    texts: list[str] = []
    total = 0
    content_bytes = 0
    failures = 0
    for number, page in enumerate(reader.pages, start=1):
        size = _pdf_content_size(page, number)
        if size > MAX_PDF_PAGE_CONTENT_BYTES:
            raise ParseError(
                f"page {number} of the PDF unpacks to {format_size(size)} of drawing instructions; the limit "
                f"is {format_size(MAX_PDF_PAGE_CONTENT_BYTES)} a page (refused as a possible PDF bomb)"
            )
        content_bytes += size
        if content_bytes > MAX_PDF_CONTENT_BYTES:
            raise ParseError(
                f"the PDF's pages unpack to more than {format_size(MAX_PDF_CONTENT_BYTES)} of drawing "
                "instructions (refused as a possible PDF bomb); split it"
            )
        try:
            text = page.extract_text() or ""
        except Exception:  # one broken page should not lose the others
            failures += 1
            continue
        total += len(text)
        if total > MAX_BODY_CHARS:
            raise ParseError(f"the PDF holds more than {MAX_BODY_CHARS:,} characters of text; split it")
        texts.append(text.replace("\x00", ""))
    if page_count and failures == page_count:
        raise ParseError("the PDF is damaged: no page could be read")
    body = "\n\n".join(text.strip() for text in texts if text.strip())
    if not body:
        raise ParseError("the PDF has no extractable text (it may be a scanned image; run OCR on it first)")
    title = _pdf_title(reader) or _first_line(body)
    return _document(title, body, source, metadata={"pages": page_count})


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


# --- Word -----------------------------------------------------------------------------------


def _parse_docx(data: bytes, source: str) -> DocumentInput:
    if not data.startswith(b"PK\x03\x04"):
        described = _magic_name(data) or "text or other data"
        raise ParseError(f"the file is named .docx but is not a Word document (not a zip archive; it is {described})")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise ParseError(f"the file is named .docx but is a damaged zip archive ({_short(error)})") from None
    if MAIN_PART not in archive.namelist():
        raise ParseError("the file is named .docx but is a zip archive without word/document.xml, not a Word document")
    _refuse_zip_bomb(members)
    # The sizes above are what the archive claims; reading itself stops at what it unpacks.
    try:
        parts = docx_text(archive, max_chars=MAX_BODY_CHARS, max_xml_bytes=MAX_DOCX_XML_BYTES)
    except DocxLimit as limit:
        raise ParseError(f"the Word document is too large: {limit}; reading stopped there; split it") from None
    except DocxUnreadable as error:
        raise ParseError(f"the Word document is damaged and cannot be read ({_short(error)})") from None
    body = "\n".join(part for part in parts if part.strip())
    if not body.strip():
        raise ParseError("the Word document has no text")
    title = docx_title(archive, max_xml_bytes=MAX_DOCX_CORE_BYTES)
    return _document(title or _first_line(body), body, source)


def _refuse_zip_bomb(members: list[zipfile.ZipInfo]) -> None:
    unpacked = sum(member.file_size for member in members)
    if unpacked > MAX_UNZIPPED_BYTES:
        raise ParseError(
            f"the Word document would unpack to {format_size(unpacked)}; the limit is "
            f"{format_size(MAX_UNZIPPED_BYTES)} (refused as a possible zip bomb)"
        )
    for member in members:
        if member.file_size < RATIO_CHECK_MIN_BYTES:
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > MAX_COMPRESSION_RATIO:
            raise ParseError(
                f"the Word document's part {member.filename} is compressed {ratio:,.0f} to 1; more than "
                f"{MAX_COMPRESSION_RATIO} to 1 is refused as a possible zip bomb"
            )


# --- JSON -----------------------------------------------------------------------------------


def _parse_json(text: str, source: str, *, lines: bool) -> ParsedFile:
    if not text.strip():
        raise ParseError("the file has no records")
    if lines:
        return _parse_json_lines(text, source)
    problem = nesting_problem(text)
    if problem:
        raise ParseError(problem)
    try:
        value = json.loads(text)
    except RecursionError:
        raise ParseError(TOO_DEEP) from None
    except json.JSONDecodeError as error:
        if error.msg == "Extra data" and text.lstrip().startswith("{"):
            return _parse_json_lines(text, source)  # JSON Lines saved as .json
        raise ParseError(f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    if not isinstance(value, list | dict):
        raise ParseError("the JSON file must hold an object or a list of objects")
    if value == []:
        raise ParseError("the JSON list is empty")
    items: list[DocumentInput] = []
    problems: list[str] = []
    for number, record in enumerate(value if isinstance(value, list) else [value], 1):
        try:
            items.append(_record(record, source))
        except ParseError as error:
            problems.append(f"item {number}: {error}")
    return _collected(items, problems)


def _parse_json_lines(text: str, source: str) -> ParsedFile:
    items: list[DocumentInput] = []
    problems: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        # Only a line with more brackets than the depth limit can nest too deeply (cheap to count).
        if line.count("[") + line.count("{") > MAX_JSON_DEPTH and (problem := nesting_problem(line)):
            problems.append(f"line {number}: {problem}")
            continue
        try:
            record = json.loads(line)
        except RecursionError:
            problems.append(f"line {number}: {TOO_DEEP}")
            continue
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: invalid JSON at column {error.colno}: {error.msg}")
            continue
        try:
            items.append(_record(record, source))
        except ParseError as error:
            problems.append(f"line {number}: {error}")
    return _collected(items, problems)


def _collected(items: list[DocumentInput], problems: list[str]) -> ParsedFile:
    if not items:
        raise ParseError(f"no document in the file could be read: {summarize_problems(problems)}")
    return ParsedFile(items, problems)


def _record(record: object, source: str) -> DocumentInput:
    if not isinstance(record, dict):
        raise ParseError(f"expected an object with title and content, got {type(record).__name__}")
    body = next((record[name] for name in JSON_TEXT_FIELDS if name in record and record[name] is not None), None)
    if body is None:
        raise ParseError("no text: the object needs a `content`, `text` or `body` field")
    if not isinstance(body, str):
        raise ParseError(f"the text field must be a string, not {type(body).__name__}")
    if not body.strip():
        raise ParseError("the text field is empty")
    identifier = record.get("id", record.get("_id"))
    url = record.get("url")
    metadata: dict = {}
    if isinstance(record.get("metadata"), dict):
        metadata.update(record["metadata"])
    metadata.update({key: value for key, value in record.items() if key not in JSON_KNOWN_FIELDS})
    if url:
        metadata["url"] = url
    return _document(
        _as_text(record.get("title")),
        body.replace("\x00", ""),
        _as_text(record.get("source")) or _as_text(url) or source,
        language=_language(record.get("language")),
        external_id=_as_text(identifier),
        metadata=metadata,  # cleaned of NULs with the rest by documents.services
    )


def _as_text(value: object) -> str:
    return "" if value is None else str(value).replace("\x00", "")


def _language(value: object) -> str | None:
    """Return en / zh / mixed for the common spellings (zh-CN, English); None lets us detect it."""
    if not isinstance(value, str):
        return None
    code = value.strip().lower()
    return LANGUAGE_ALIASES.get(code) or LANGUAGE_ALIASES.get(code.split("-")[0].split("_")[0])


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())[:120]
    return ""


def _short(error: BaseException) -> str:
    message = str(error) or type(error).__name__
    return message if len(message) <= 160 else message[:157] + "..."
