"""HTML: the main content, without the page's chrome, titled by the page. Pure, no ORM.

trafilatura finds the main content (article text, its headings, tables) and drops navigation,
banners, related links, comments and footers; it was the best of three libraries measured on saved
pages (bench/html_extraction.py, docs/ingestion.md). A page where it finds nothing (a bare
fragment, a page of links), or too large for it (limits.MAX_HTML_MAIN_CONTENT_TAGS), falls back to
all of its visible text, paragraphs kept apart.
"""

from __future__ import annotations

import logging
import re

from documents.inputs import DocumentInput
from documents.parsers import limits
from documents.parsers.common import ParseError, document

# trafilatura logs an ERROR for every fragment it finds no page in; we fall back instead.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)

HTML_DROPPED_TAGS = ["script", "style", "noscript", "template", "iframe", "object", "svg", "head"]
HTML_BLOCK_TAGS = [
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p",
    "pre", "section", "table", "td", "th", "tr", "ul",
]  # fmt: skip


def parse_html(text: str, source: str) -> DocumentInput:
    """Return the document of an HTML file's decoded text."""
    from bs4 import BeautifulSoup, Comment

    tags = text.count("<")
    if tags > limits.MAX_HTML_TAGS:
        raise ParseError(
            f"the HTML file has {tags:,} tags; the limit is {limits.MAX_HTML_TAGS:,}; save it as text or split it"
        )
    main = _main_content(text) if tags <= limits.MAX_HTML_MAIN_CONTENT_TAGS else None
    if main is not None:
        title, body = main
        if not title:
            title = _page_title(text)
        return document(title, body, source)
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
    return document(title, body, source)


def _main_content(text: str) -> tuple[str, str] | None:
    """Return the title and the main content's text (each paragraph, heading, list item and table
    row a line), or None when trafilatura finds none."""
    import trafilatura

    result = trafilatura.bare_extraction(
        UNSHOWN.sub(" ", text),
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        deduplicate=False,
    )
    # One element: trafilatura found no structure and fell back to every text of the page, split
    # at each tag (bold words included): the visible text, read below, does better.
    if result is None or result.body is None or len(result.body) < 2:
        return None
    body = "\n".join(line for line in _lines(result.body) if line)
    if not body:
        return None
    return " ".join((result.title or "").split()), body


# Elements of trafilatura's own tree that make a line each; inline ones (hi, ref) join their words.
_LINE_TAGS = {"p", "head", "item", "quote", "code"}
# What no visitor sees and trafilatura would keep as text.
UNSHOWN = re.compile(r"<(noscript|template)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def _lines(element: object) -> list[str]:
    if element.tag in _LINE_TAGS:
        return [" ".join("".join(element.itertext()).split())]
    if element.tag == "row":
        return ["\t".join(" ".join("".join(cell.itertext()).split()) for cell in element)]
    return [line for child in element for line in _lines(child)]


def _page_title(text: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    if soup.title and soup.title.get_text(strip=True):
        return soup.title.get_text(" ", strip=True)
    heading = soup.find("h1")
    return heading.get_text(" ", strip=True) if heading else ""
