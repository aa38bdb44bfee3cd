"""Markdown: the text a Markdown file holds (indexed, chunked, reranked) and its safe HTML (shown
on the document page). Pure, no ORM.

One parser, markdown-it-py with CommonMark plus tables, reads both ways, so what is indexed is
what is shown. Raw HTML in the Markdown is not HTML here: it is text, escaped when shown (the
`html` option is off). Links keep only the URLs markdown-it-py validates (no `javascript:`,
`vbscript:`, `file:` or non-image `data:`), and open with rel="nofollow noopener noreferrer".
Images show as their alt text: an uploaded file never makes the page fetch anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.html import escape
from markdown_it import MarkdownIt

LINK_REL = "nofollow noopener noreferrer"


@dataclass
class MarkdownText:
    title: str  # the text of the first level-1 heading ("" when there is none)
    text: str  # the text: blocks apart by a blank line, list items and table rows by a line


def markdown_text(source: str) -> MarkdownText:
    """Return the text of `source` without its markup: headings, emphasis, link and image syntax
    gone (link text and alt text kept), code kept as written, table cells split by tabs."""
    tokens = _parser().parse(source)
    blocks: list[tuple[str, str]] = []  # (block, item of a tight list, or table row; its text)
    title = ""
    row: list[str] | None = None
    tight = False  # inside an item of a tight list: its lines stay together
    heading = ""
    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            heading = token.tag
        elif kind == "heading_close":
            heading = ""
        elif kind == "paragraph_open":
            tight = token.hidden
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close" and row is not None:
            blocks.append(("row", "\t".join(row)))
            row = None
        elif kind == "inline":
            text = _inline_text(token.children or [])
            if row is not None:
                row.append(" ".join(text.split()))
                continue
            if heading == "h1" and not title:
                title = " ".join(text.split())
            blocks.append(("item" if tight else "block", text))
        elif kind in ("fence", "code_block"):
            blocks.append(("block", token.content.rstrip("\n")))
    pieces: list[str] = []
    previous = ""
    for kind, text in blocks:
        if not text.strip():
            continue
        if pieces:
            # Items of one tight list, and rows of one table, one a line; other blocks apart.
            pieces.append("\n" if kind == previous and kind != "block" else "\n\n")
        pieces.append(text)
        previous = kind
    return MarkdownText(title=title, text="".join(pieces).strip())


def _inline_text(children: list) -> str:
    pieces: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            pieces.append(child.content)
        elif child.type == "softbreak":
            pieces.append(" ")
        elif child.type == "hardbreak":
            pieces.append("\n")
        elif child.type == "image":
            pieces.append(_inline_text(child.children or []))
    return "".join(pieces)


def render_markdown(source: str, mark: Callable[[str], str] = escape, *, title: str = "") -> str:
    """Return the HTML of `source`, every piece of its text passed through `mark`, which must
    escape it (the document page marks the query's terms there too).

    When `source` opens with a level-1 heading reading `title`, that heading is left out: the page
    already shows the title above the text (markdown_text took it from that heading)."""
    # A parser of this call's own: rules shared between threads would mix their `mark`s.
    parser = _parser()

    def text(self, tokens, index, options, env) -> str:
        return str(mark(tokens[index].content))

    def image(self, tokens, index, options, env) -> str:
        return str(mark(_inline_text(tokens[index].children or [])))

    def link_open(self, tokens, index, options, env) -> str:
        tokens[index].attrSet("rel", LINK_REL)
        return self.renderToken(tokens, index, options, env)

    for name, rule in (("text", text), ("image", image), ("link_open", link_open)):
        parser.add_render_rule(name, rule)
    env: dict = {}
    tokens = parser.parse(source, env)
    if (
        title
        and len(tokens) >= 3
        and tokens[0].type == "heading_open"
        and tokens[0].tag == "h1"
        and " ".join(tokens[1].content.split()) == " ".join(title.split())
    ):
        tokens = tokens[3:]
    return parser.renderer.render(tokens, parser.options, env)


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")
