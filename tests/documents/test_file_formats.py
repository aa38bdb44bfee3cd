"""Each accepted format becomes the right title and text (documents.parsers, no database)."""

from __future__ import annotations

import codecs
import json

import pytest

from documents.parsers import ParseError, parse_file, parse_file_lenient
from tests.support.files import encrypted_pdf, text_pdf, word_document


def only(name: str, data: bytes):
    items = parse_file(name, data)
    assert len(items) == 1
    return items[0]


def test_it_reads_plain_text_and_strips_stray_nul_bytes():
    item = only("notes.txt", b"First line\nSecond\x00 line")
    assert item.body == "First line\nSecond line"
    assert item.source == "notes.txt"


def test_it_takes_the_markdown_title_from_the_first_heading():
    item = only("guide.md", b"Intro text\n\n# Getting started #\n\nSteps.\n\n# Later heading\n")
    assert item.title == "Getting started"
    assert "Steps." in item.body


def test_it_decodes_chinese_in_gb18030_utf16_and_utf8_with_bom():
    text = "红富士苹果，产自山东。"
    assert only("a.txt", text.encode("gb18030")).body == text
    assert only("b.txt", text.encode("utf-16")).body == text
    assert only("c.txt", codecs.BOM_UTF8 + text.encode("utf-8")).body == text


def test_it_keeps_only_the_visible_text_of_html():
    page = b"""<html><head><title>Apple guide</title><style>p { color: red }</style>
    <script>var secret = "script text";</script></head>
    <body><h1>Heading</h1><p>Hello <b>bold</b> world.</p><noscript>noscript text</noscript>
    <template>template text</template><!-- a comment --><ul><li>one</li><li>two</li></ul></body></html>"""
    item = only("page.html", page)
    assert item.title == "Apple guide"
    assert item.body == "Heading\nHello bold world.\none\ntwo"


def test_it_takes_the_html_title_from_the_first_h1_without_a_title_tag():
    assert only("page.htm", b"<body><p>x</p><h1>Main <i>heading</i></h1></body>").title == "Main heading"


def test_it_reads_every_page_of_a_pdf():
    item = only("paper.pdf", text_pdf("Rerankers read (whole) chunks.\nSecond line", "Page two text"))
    assert item.body == "Rerankers read (whole) chunks.\nSecond line\n\nPage two text"
    assert item.title == "Rerankers read (whole) chunks."
    assert item.metadata == {"pages": 2}


def test_it_takes_the_pdf_title_from_its_metadata():
    assert only("paper.pdf", text_pdf("Body text", title="Metadata title")).title == "Metadata title"


def test_it_opens_a_pdf_encrypted_with_an_empty_password():
    assert only("open.pdf", encrypted_pdf(text_pdf("Readable words"), user_password="")).body == "Readable words"


def test_it_reads_word_paragraphs_and_tables():
    data = word_document("Opening paragraph.", "Second paragraph.", table=[["Fruit", "Colour"], ["Apple", "Red"]])
    item = only("memo.docx", data)
    assert item.body == "Opening paragraph.\nSecond paragraph.\nFruit\tColour\nApple\tRed"
    assert item.title == "Opening paragraph."
    assert only("memo.docx", word_document("Body.", title="Core title")).title == "Core title"


def test_it_reads_a_json_list_and_a_single_object():
    records = [
        {"id": 7, "title": "One", "content": "First text", "language": "en", "url": "https://example.com/1"},
        {"title": "Two", "body": "Second text", "source": "wiki", "author": "Ann", "language": "zh-CN"},
    ]
    first, second = parse_file("items.json", json.dumps(records).encode())
    assert (first.external_id, first.title, first.body, first.language) == ("7", "One", "First text", "en")
    assert first.source == "https://example.com/1"
    assert first.metadata == {"url": "https://example.com/1"}
    assert (second.source, second.language, second.metadata) == ("wiki", "zh", {"author": "Ann"})
    assert [i.body for i in parse_file("one.json", b'{"title": "T", "text": "Only"}')] == ["Only"]


def test_it_reads_a_beir_corpus():
    lines = [
        {"_id": "doc-1", "title": "Flow", "text": "Boundary layers.", "metadata": {"year": 1960}},
        {"_id": "doc-2", "title": "", "text": "无标题的段落。"},
    ]
    data = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    first, second = parse_file("corpus.jsonl", data)
    assert (first.external_id, first.title, first.body, first.metadata) == (
        "doc-1",
        "Flow",
        "Boundary layers.",
        {"year": 1960},
    )
    assert (second.external_id, second.body, second.source) == ("doc-2", "无标题的段落。", "corpus.jsonl")


def test_it_reports_bad_jsonl_lines_and_keeps_the_good_ones():
    data = b'{"title": "A", "text": "ok"}\n{broken\n\n[1, 2]\n{"title": "B", "text": "ok too"}\n'
    parsed = parse_file_lenient("mixed.jsonl", data)
    assert [item.title for item in parsed.items] == ["A", "B"]
    assert parsed.problems == [
        "line 2: invalid JSON at column 2: Expecting property name enclosed in double quotes",
        "line 4: expected an object with title and content, got list",
    ]
    with pytest.raises(ParseError, match="line 2: invalid JSON"):
        parse_file("mixed.jsonl", data)


def test_it_reads_json_lines_saved_as_json():
    assert [i.title for i in parse_file("lines.json", b'{"title": "A", "text": "a"}\n{"title": "B", "text": "b"}')] == [
        "A",
        "B",
    ]
