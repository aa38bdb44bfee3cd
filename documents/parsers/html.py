"""HTML: the visible text, paragraphs kept apart, titled by <title> or the first <h1>. Pure, no ORM."""

from __future__ import annotations

from documents.inputs import DocumentInput
from documents.parsers import limits
from documents.parsers.common import ParseError, document

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
