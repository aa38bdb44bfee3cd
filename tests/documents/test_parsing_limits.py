"""Parsing with limits: JSON nesting and size are checked before anything recursive runs (a clear
400, never a 500 or a busy thread), metadata is cleaned without recursion, and a Word file is read
as a stream that stops at its limits, however well it is compressed. Entities are never resolved.
"""

from __future__ import annotations

import io
import json
import random
import zipfile

import pytest

from documents.json_limits import MAX_JSON_DEPTH
from documents.models import Document
from documents.parsers import limits
from tests.support.files import upload

pytestmark = pytest.mark.django_db

UPLOAD_URL = "/api/v1/documents/upload"
LIST_URL = "/api/v1/documents"
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
GARBAGE = b"<<< this is not XML, and reading it would fail the file as damaged"


def nested_metadata(levels: int) -> dict:
    metadata: dict = {"leaf": "x\u0000y"}
    for _ in range(levels - 1):
        metadata = {"k": metadata}
    return metadata


def post_raw(client, url: str, body: bytes):
    return client.generic("POST", url, body, content_type="application/json")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000, id="100000-open-brackets"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100000-levels-balanced"),
        pytest.param(b'{"query": "a", "documents": ' + b"[{}" * 5_000 + b"]" * 5_000 + b"}", id="hidden-in-a-field"),
    ],
)
def test_it_refuses_deep_json_with_a_400(client, body):
    response = post_raw(client, "/api/v1/rerank", body)
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error.startswith("JSON parse error")
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error or "recursion" in error


def test_it_refuses_a_json_body_over_the_size_limit(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({"query": "apple", "documents": ["x" * 20_000]}).encode()
    response = post_raw(client, "/api/v1/rerank", body)
    assert response.status_code == 413  # refused from its Content-Length, before it is read
    assert response.json() == {"error": "The request body is larger than 10,000 bytes."}


def test_it_stores_deep_metadata_up_to_the_limit_and_refuses_deeper(staff_api):
    # The body is one level more than its metadata: the outer object.
    deepest = nested_metadata(MAX_JSON_DEPTH - 1)
    created = staff_api.post(LIST_URL, {"title": "Deep", "body": "Deep metadata.", "metadata": deepest}, format="json")
    assert created.status_code == 201, created.content[:500]
    stored = Document.objects.get(pk=created.json()["id"]).metadata
    assert json.dumps(stored).count('"k"') == MAX_JSON_DEPTH - 2
    assert "\u0000" not in json.dumps(stored) and "xy" in json.dumps(stored)  # cleaned at every level

    for levels in (MAX_JSON_DEPTH, 500, 900):
        body = json.dumps({"title": "Deeper", "body": f"Metadata {levels} deep.", "metadata": nested_metadata(levels)})
        refused = post_raw(staff_api, LIST_URL, body.encode())
        assert refused.status_code == 400, (levels, refused.content[:300])
        assert f"deeper than {MAX_JSON_DEPTH} levels" in refused.json()["error"]
    assert not Document.objects.filter(title="Deeper").exists()


def test_it_refuses_deep_json_files_and_keeps_a_deep_line_apart(staff_api):
    deep = b'[{"title": "t", "content": "c", "metadata": ' + b"[" * 5_000 + b"]" * 5_000 + b"}]"
    fine = b'{"title": "Fine line", "content": "This record is fine."}\n'
    lines = fine + b'{"title": "x", "content": ' + b"[" * 50_000

    response = staff_api.post(UPLOAD_URL, {"files": [upload("deep.json", deep), upload("deep.jsonl", lines)]})

    deep_report, lines_report = response.json()["files"]
    assert deep_report["status"] == "rejected"
    too_deep = f"the JSON nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects"
    assert deep_report["rejected"] == [too_deep]
    assert (lines_report["status"], lines_report["created"]) == ("partial", 1)
    assert lines_report["rejected"] == [f"line 2: {too_deep}"]


def word_file(document_xml: bytes, *, core_title: str | None = None, tail: bytes = b"") -> bytes:
    """Return a minimal .docx; `tail` is appended to word/document.xml after its end tag."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", document_xml + tail)
        if core_title is not None:
            core = (
                '<cp:coreProperties xmlns:cp="urn:cp" xmlns:dc="http://purl.org/dc/elements/1.1/">'
                f"<dc:title>{core_title}</dc:title></cp:coreProperties>"
            )
            archive.writestr("docProps/core.xml", core)
    return out.getvalue()


def paragraphs_xml(paragraphs: list[str], *, doctype: str = "", close: bool = True) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" for text in paragraphs)
    end = "</w:body></w:document>" if close else ""
    return f'<?xml version="1.0"?>{doctype}<w:document xmlns:w="{W}"><w:body>{body}{end}'.encode()


def upload_one(staff_api, name: str, data: bytes) -> dict:
    response = staff_api.post(UPLOAD_URL, {"files": [upload(name, data)]})
    assert response.status_code == 200
    return response.json()["files"][0]


def test_it_stops_reading_a_word_file_at_its_text_limit(staff_api, monkeypatch):
    monkeypatch.setattr(limits, "MAX_BODY_CHARS", 5_000)
    # 6,000 characters of good text, then bytes that would make the file "damaged" if read.
    xml = paragraphs_xml(["words " * 50] * 20, close=False)

    report = upload_one(staff_api, "long.docx", word_file(xml, tail=GARBAGE * 10_000))

    assert report["status"] == "rejected"
    assert report["rejected"] == [
        "the Word document is too large: it holds more than 5,000 characters of text; reading stopped there; split it"
    ]


def test_it_stops_reading_a_word_file_at_its_unpacked_size(staff_api, monkeypatch):
    monkeypatch.setattr(limits, "MAX_DOCX_XML_BYTES", 1024 * 1024)
    # Word-like markup around little text, with revision ids as Word writes them: it passes the
    # 100:1 ratio check, and its 4 MB would be read whole but for the limit on unpacked bytes.
    rng = random.Random(3)
    runs = (
        f'<w:r w:rsidR="{rng.getrandbits(32):08X}"><w:rPr><w:b/><w:i/><w:sz w:val="24"/></w:rPr>'
        f'<w:t xml:space="preserve">{rng.choice("abcdefghij")}</w:t></w:r>'
        for _ in range(40_000)
    )
    xml = paragraphs_xml([], close=False) + "".join(runs).encode()
    data = word_file(xml, tail=GARBAGE * 1000)
    unpacked = zipfile.ZipFile(io.BytesIO(data)).getinfo("word/document.xml")
    assert unpacked.file_size > 2 * 1024 * 1024
    assert unpacked.file_size / unpacked.compress_size < limits.MAX_COMPRESSION_RATIO

    report = upload_one(staff_api, "markup.docx", data)

    assert report["rejected"] == [
        "the Word document is too large: its text part unpacks to more than 1 MB of XML; "
        "reading stopped there; split it"
    ]


def test_it_stops_reading_a_word_file_at_one_paragraph_over_its_limit(staff_api, monkeypatch):
    """A paragraph is held in memory whole until it ends: one of 28 MB took 436 MB and 5.6 s of the
    web process. Reading stops once one paragraph passes its own limit, well before the part's."""
    monkeypatch.setattr(limits, "MAX_DOCX_BLOCK_XML_BYTES", 1024 * 1024)
    rng = random.Random(5)
    words = (
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(300_000)
    )
    one_paragraph = "".join(f"<w:r><w:t>{word} </w:t></w:r>" for word in words)
    xml = paragraphs_xml(["A short first paragraph.", one_paragraph, "A short last paragraph."])
    assert limits.MAX_DOCX_BLOCK_XML_BYTES < len(xml) < limits.MAX_DOCX_XML_BYTES  # only the paragraph is over
    assert len(one_paragraph.split()) < limits.MAX_BODY_CHARS

    report = upload_one(staff_api, "one-paragraph.docx", word_file(xml))

    assert report["rejected"] == [
        "the Word document is too large: one paragraph or table row unpacks to more than 1 MB of XML "
        "(the limit for one); reading stopped there; split it"
    ]


def test_it_reads_paragraphs_that_add_up_to_more_than_one_paragraphs_limit(staff_api, monkeypatch):
    monkeypatch.setattr(limits, "MAX_DOCX_BLOCK_XML_BYTES", 64 * 1024)
    xml = paragraphs_xml([f"Paragraph {n} of many, each well under the limit." for n in range(3_000)])
    assert len(xml) > 2 * limits.MAX_DOCX_BLOCK_XML_BYTES

    report = upload_one(staff_api, "many-paragraphs.docx", word_file(xml))

    assert report["status"] == "created", report["message"]


def test_it_never_resolves_entities_in_a_word_file_and_keeps_the_text_around_them(staff_api):
    doctype = (
        '<!DOCTYPE w:document [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
        '<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    )
    xml = paragraphs_xml(["Before &lol3; middle &secret; after.", "Second paragraph."], doctype=doctype)

    report = upload_one(staff_api, "entities.docx", word_file(xml))

    assert report["status"] == "created", report
    stored = Document.objects.get(pk=report["document_ids"][0])
    assert stored.body == "Before  middle  after.\nSecond paragraph."
    assert "lol" not in stored.body and "root:" not in stored.body


def test_it_titles_a_word_file_without_properties_by_its_first_line(staff_api):
    untitled = upload_one(staff_api, "untitled.docx", word_file(paragraphs_xml(["Quarterly orchard report", "Body."])))
    titled = upload_one(staff_api, "titled.docx", word_file(paragraphs_xml(["Body two."]), core_title="Core title"))

    assert Document.objects.get(pk=untitled["document_ids"][0]).title == "Quarterly orchard report"
    assert Document.objects.get(pk=titled["document_ids"][0]).title == "Core title"
