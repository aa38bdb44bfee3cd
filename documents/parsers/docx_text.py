"""The text of a Word .docx, read as a stream: bounded by the bytes actually unpacked. Pure, no ORM.

A .docx is a zip of XML parts. The main part is unpacked in pieces and fed to an incremental XML
parser; each finished paragraph or table row hands over its text (one XPath query, in C) and is
dropped from memory, and reading stops the moment the unpacked XML passes `max_xml_bytes` or the
text passes `max_chars`: a 1.5 MB file that unpacks to 97 MB of XML is refused at the limit, not
parsed whole (python-docx built the whole tree: 8.7 s, web memory 252 -> 609 MB). The parser
loads no DTD, resolves no entity and opens no network or file: declared entities stay unresolved
(the text around them is kept); billion laughs and external entities expand to nothing.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator

from lxml import etree

# Both spellings of WordprocessingML: transitional (what Word writes) and strict.
WORD_NAMESPACES = (
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "http://purl.oclc.org/ooxml/wordprocessingml/main",
)
MARKUP_COMPATIBILITY = "http://schemas.openxmlformats.org/markup-compatibility/2006"
DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
MAIN_PART = "word/document.xml"
CORE_PART = "docProps/core.xml"
# Unpacked bytes handed to the XML parser at a time.
READ_CHUNK_BYTES = 64 * 1024


def _tags(local: str) -> list[str]:
    return [f"{{{namespace}}}{local}" for namespace in WORD_NAMESPACES]


PARAGRAPHS, TABLES, ROWS, CELLS = _tags("p"), _tags("tbl"), _tags("tr"), _tags("tc")
BLOCKS = (*PARAGRAPHS, *TABLES)
# A block's text in document order: text runs, and the tabs and line breaks between them. Word
# writes a text box twice, for readers that know it (mc:Choice) and for the others (mc:Fallback):
# only the first copy is read. Deleted text (w:delText) and field codes (w:instrText) are not text.
_TEXT_XPATH = (
    ".//w:t[not(ancestor::mc:Fallback)]/text()"
    " | .//w:tab[not(ancestor::mc:Fallback)] | .//w:ptab[not(ancestor::mc:Fallback)]"
    " | .//w:br[not(ancestor::mc:Fallback)] | .//w:cr[not(ancestor::mc:Fallback)]"
    " | .//w:noBreakHyphen[not(ancestor::mc:Fallback)]"
)
# Most paragraphs are text runs only: one cheap query tells, and a cheaper one reads them.
_PLAIN_XPATH = "not(.//w:tab | .//w:ptab | .//w:br | .//w:cr | .//w:noBreakHyphen | .//mc:Fallback)"
_RUNS_XPATH = ".//w:t/text()"


def _queries(expression: str) -> dict[str, etree.XPath]:
    return {
        namespace: etree.XPath(expression, namespaces={"w": namespace, "mc": MARKUP_COMPATIBILITY}, smart_strings=False)
        for namespace in WORD_NAMESPACES
    }


TEXT_OF, IS_PLAIN, RUNS_OF = _queries(_TEXT_XPATH), _queries(_PLAIN_XPATH), _queries(_RUNS_XPATH)
# What the non-text nodes above stand for (a page or column break is no character).
SPECIAL = {"tab": "\t", "ptab": "\t", "cr": "\n", "noBreakHyphen": "-"}
LINE_BREAK_TYPES = (None, "textWrapping")


class DocxLimit(Exception):
    """Reading stopped at a limit; the message says which."""


class DocxUnreadable(Exception):
    """The archive or its XML is broken."""


class _Progress:
    """Unpacked bytes of a part so far, and where its last finished block ended."""

    def __init__(self) -> None:
        self.unpacked = 0
        self.block_end = 0

    def block_done(self) -> None:
        self.block_end = self.unpacked


def _stream(
    archive: zipfile.ZipFile,
    name: str,
    *,
    tags: tuple[str, ...],
    max_xml_bytes: int,
    what: str,
    progress: _Progress | None = None,
    max_block_bytes: int | None = None,
) -> Iterator[object]:
    """Yield each element named in `tags` once it is complete, unpacking the part piece by piece.

    With `max_block_bytes`, reading stops when more XML than that was unpacked since the consumer
    last called `progress.block_done()`: one block (a paragraph, a table row) is held in memory
    whole until it ends, so it is bounded on its own (a 28 MB one-paragraph part took 436 MB).
    """
    parser = etree.XMLPullParser(
        events=("end",),
        tag=tags,
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    progress = progress or _Progress()
    try:
        with archive.open(name) as member:
            while chunk := member.read(READ_CHUNK_BYTES):
                progress.unpacked += len(chunk)
                if progress.unpacked > max_xml_bytes:
                    raise DocxLimit(f"{what} unpacks to more than {max_xml_bytes // (1024 * 1024)} MB of XML")
                if max_block_bytes is not None and progress.unpacked - progress.block_end > max_block_bytes:
                    raise DocxLimit(
                        f"one paragraph or table row unpacks to more than {max_block_bytes // (1024 * 1024)} MB "
                        "of XML (the limit for one)"
                    )
                parser.feed(chunk)
                for _, element in parser.read_events():
                    yield element
        parser.close()
        for _, element in parser.read_events():
            yield element
    except (etree.XMLSyntaxError, zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise DocxUnreadable(str(error) or type(error).__name__) from None


def _namespace(tag: str) -> str:
    return tag[1 : tag.index("}")]


def _text(element: object) -> str:
    """Return the text of a paragraph or cell (XPath queries, in C)."""
    namespace = _namespace(element.tag)
    if IS_PLAIN[namespace](element):
        return "".join(RUNS_OF[namespace](element))
    pieces: list[str] = []
    for node in TEXT_OF[namespace](element):
        if isinstance(node, str):
            pieces.append(node)
            continue
        local = node.tag[node.tag.index("}") + 1 :]
        if local == "br":
            kind = next((value for name, value in node.attrib.items() if name.endswith("}type")), None)
            pieces.append("\n" if kind in LINE_BREAK_TYPES else "")
        else:
            pieces.append(SPECIAL[local])
    return "".join(pieces)


def _row_text(row: object) -> str:
    """Return a table row as its cells' text, each on one line, split by tabs."""
    cells = (cell for cell in row if cell.tag in CELLS)
    return "\t".join(" ".join(_text(cell).split()) for cell in cells)


def _is_outermost(element: object) -> bool:
    """Return whether no paragraph or table encloses `element` (it is a block of the body)."""
    return next(element.iterancestors(*BLOCKS), None) is None


def _forget(element: object) -> None:
    """Drop a finished element, and the finished siblings before it, from the tree being built."""
    element.clear()
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def docx_text(
    archive: zipfile.ZipFile, *, max_chars: int, max_xml_bytes: int, max_block_bytes: int | None = None
) -> list[str]:
    """Return the lines of the main part's text: body paragraphs, and table rows with their cells
    split by tabs (a merged cell once; a table inside a cell is read as that cell's text).

    Raises DocxLimit when the text, the unpacked XML or the XML of one body paragraph or table
    row passes its limit (reading stops there), DocxUnreadable when the archive or the XML is broken.
    """
    parts: list[str] = []
    chars = 0
    tags = (*PARAGRAPHS, *ROWS)
    progress = _Progress()
    elements = _stream(
        archive,
        MAIN_PART,
        tags=tags,
        max_xml_bytes=max_xml_bytes,
        what="its text part",
        progress=progress,
        max_block_bytes=max_block_bytes,
    )
    for element in elements:
        if element.tag in ROWS:
            # A row of a table in the body, not of one nested in a cell.
            table = element.getparent()
            if table is None or not _is_outermost(table):
                continue
            text = _row_text(element)
        elif _is_outermost(element):
            text = _text(element)
        else:
            continue  # a paragraph in a cell or a text box: read with what encloses it
        chars += len(text)
        if chars > max_chars:
            raise DocxLimit(f"it holds more than {max_chars:,} characters of text")
        parts.append(text)
        _forget(element)
        progress.block_done()
    return parts


def docx_title(archive: zipfile.ZipFile, *, max_xml_bytes: int) -> str:
    """Return the title in the document's core properties ("" when there is none or it is broken)."""
    if CORE_PART not in archive.namelist():
        return ""
    try:
        for element in _stream(archive, CORE_PART, tags=(DC_TITLE,), max_xml_bytes=max_xml_bytes, what="properties"):
            # An unresolved entity is a child of the element; the text after it is its tail.
            text = (element.text or "") + "".join(child.tail or "" for child in element)
            return " ".join(text.split())
    except (DocxLimit, DocxUnreadable):
        return ""  # a broken properties part only costs the title
    return ""
