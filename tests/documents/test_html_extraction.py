"""HTML pages are indexed by their main content: the article's text, title and headings kept, the
page's chrome (navigation, cookie banners, related links, newsletter boxes, comments, sidebars,
footers) dropped. Before, every visible word was indexed, the footer's as much as the article's.

The pages are saved in tests/data/html_pages/ with what each must keep and drop (expected.json).
"""

from __future__ import annotations

import json

import pytest

from documents.parsers import parse_file
from tests.support.processes import ROOT

PAGES = ROOT / "tests" / "data" / "html_pages"
EXPECTED = json.loads((PAGES / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", EXPECTED)
def test_it_keeps_the_main_content_title_and_headings_and_drops_the_chrome(name):
    want = EXPECTED[name]
    [document] = parse_file(name, (PAGES / name).read_bytes())

    flat = " ".join(document.body.split())
    lines = document.body.splitlines()
    assert document.title == want["title"]
    assert [piece for piece in want["content"] if piece not in flat] == []
    # The headings under the title, each a line of its own (the first is the title itself).
    assert [heading for heading in want["headings"][1:] if heading not in lines] == []
    assert [piece for piece in want["boilerplate"] if piece in flat] == []


def test_a_fragment_without_a_page_keeps_all_its_text():
    [document] = parse_file("note.html", b"<p>Just one short paragraph about apples.</p><p>And pears.</p>")

    assert document.body == "Just one short paragraph about apples.\nAnd pears."
