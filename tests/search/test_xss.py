"""HTML and script in documents (title, body, source, file name) and in queries appear as text on
the results, document and admin pages, and in the API's snippets; highlighting escapes first and
only then adds its <mark> tags. Each page is parsed: no injected element may exist in it."""

from __future__ import annotations

import uuid

import pytest
from bs4 import BeautifulSoup

from documents.models import LIBRARY, Document
from documents.services import DocumentInput, document_create
from tests.support.files import upload

pytestmark = pytest.mark.django_db

GENEROUS_SECONDS = 30.0
# Every injected element carries one of these ids: finding one in a parsed page is a hole.
TITLE = '<img src=x id=xss-title onerror="alert(1)"> Xssapple <script id=xss-title-script>alert(1)</script>'
SOURCE = "<svg id=xss-source onload=alert(3)>.txt"
BODY = (
    "Xssapple orchards grow tart fruit. <script id=xss-body>alert(2)</script> mark this word.\n\n"
    'A second paragraph: <img id=xss-body-img src=x onerror="alert(2)"> and </mark><b id=xss-mark>bold</b> '
    'xssapple again, with "double" and \'single\' quotes & an <a id=xss-link href="javascript:alert(5)">link</a>.'
)
# PostgreSQL's parser drops what looks like a tag, so the query's markup can never match: its
# `or`s let the document match by its words alone.
QUERY = 'xssapple or mark or <script id=xss-query>alert(9)</script> or "<img id=xss-query-img src=x>'
# "mark" also matches library documents: showing every candidate in both columns keeps the hostile
# document (first in full-text order) in the reranked column whatever the reranker thinks of it.
BOTH_COLUMNS_SHOW_ALL = {"k": 50, "k_initial": 50}
FILE_NAME = "<img id=xss-file src=x onerror=alert(4)>.txt"
INJECTED_IDS = [
    "xss-title",
    "xss-title-script",
    "xss-source",
    "xss-body",
    "xss-body-img",
    "xss-mark",
    "xss-link",
    "xss-query",
    "xss-query-img",
    "xss-file",
]


@pytest.fixture
def hostile_document(settings) -> Document:
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    item = DocumentInput(title=TITLE, body=BODY, source=SOURCE, metadata={"note": "<script id=xss-meta>"})
    return document_create(item=item, collection=LIBRARY).document


def assert_nothing_injected(html: str, where: str) -> BeautifulSoup:
    soup = BeautifulSoup(html, "html.parser")
    for element_id in [*INJECTED_IDS, "xss-meta"]:
        assert soup.find(id=element_id) is None, f"{where}: an injected element #{element_id} exists"
    for tag in soup.find_all(True):
        for name, value in tag.attrs.items():
            text = " ".join(value) if isinstance(value, list) else str(value)
            if name.startswith("on") or name in ("href", "src", "action"):
                assert "alert(" not in text, f"{where}: injected {name}={text!r} on <{tag.name}>"
    return soup


def text_of(soup: BeautifulSoup) -> str:
    return " ".join(soup.get_text().split())


def test_it_shows_html_in_documents_and_queries_as_text_on_the_results_page(client, hostile_document, rerank_worker):
    response = client.get("/search", {"q": QUERY, **BOTH_COLUMNS_SHOW_ALL})

    assert response.status_code == 200
    outcome = response.context["outcome"]
    assert outcome.is_reranked, outcome.notices
    assert hostile_document.pk in [row.document_id for row in outcome.reranked], "both columns must show it"
    soup = assert_nothing_injected(response.content.decode(), "results page")
    text = text_of(soup)
    assert '<img src=x id=xss-title onerror="alert(1)"> Xssapple' in text
    ours = soup.select(f'li.result[data-document-id="{hostile_document.pk}"] p.snippet')
    assert len(ours) == 2, "one row in each column"
    for snippet in ours:
        assert "<script id=xss-body>alert(2)</script>" in snippet.get_text(), snippet
    assert soup.find("input", attrs={"name": "q"})["value"] == " ".join(QUERY.split())
    for snippet in soup.select("p.snippet"):
        assert {tag.name for tag in snippet.find_all(True)} <= {"mark"}, snippet
    marked = [mark.get_text() for mark in soup.select("p.snippet mark")]
    assert "mark" in marked and "Xssapple" in marked  # the words are marked, the markup is not


def test_it_shows_html_as_text_on_the_document_page(client, hostile_document):
    response = client.get(f"/documents/{hostile_document.pk}", {"q": QUERY})

    assert response.status_code == 200
    soup = assert_nothing_injected(response.content.decode(), "document page")
    text = text_of(soup)
    assert "<script id=xss-body>alert(2)</script>" in text
    assert "source: <svg id=xss-source onload=alert(3)>.txt" in text
    assert soup.title.get_text().startswith(TITLE)
    for paragraph in soup.select("article.document p:not(.meta)"):
        assert {tag.name for tag in paragraph.find_all(True)} <= {"mark"}, paragraph


def test_it_returns_snippets_whose_only_markup_is_the_marks(client, hostile_document, rerank_worker):
    body = client.get("/api/v1/search", {"q": QUERY, **BOTH_COLUMNS_SHOW_ALL}).json()

    rows = [row for row in body["fulltext"] + body["reranked"] if row["document_id"] == hostile_document.pk]
    assert len(rows) == 2, body["notice"]
    for row in rows:
        assert row["title"] == " ".join(TITLE.split())  # JSON carries the title as plain text
        snippet = BeautifulSoup(row["snippet"], "html.parser")
        assert {tag.name for tag in snippet.find_all(True)} == {"mark"}, row["snippet"]
        assert_nothing_injected(row["snippet"], "API snippet")


def test_it_shows_html_as_text_on_the_admin_pages(staff_client, hostile_document):
    pages = {
        "changelist": "/admin/documents/document/?q=Xssapple",
        "change form": f"/admin/documents/document/{hostile_document.pk}/change/",
        "delete confirmation": f"/admin/documents/document/{hostile_document.pk}/delete/",
    }
    for name, url in pages.items():
        response = staff_client.get(url)
        assert response.status_code == 200, name
        soup = assert_nothing_injected(response.content.decode(), name)
        assert "Xssapple" in text_of(soup) or "Xssapple" in str(soup.find("input", attrs={"name": "title"})), name
    change = BeautifulSoup(staff_client.get(pages["change form"]).content.decode(), "html.parser")
    assert change.find("input", attrs={"name": "title"})["value"] == " ".join(TITLE.split())
    assert change.find("textarea", attrs={"name": "body"}).get_text().strip() == BODY


def test_it_shows_a_hostile_file_name_as_text_on_the_upload_page(staff_client):
    collection = f"xss-{uuid.uuid4().hex[:8]}"
    files = [upload(FILE_NAME, b"Upload with a hostile name. Xssapple."), upload("x.exe", b"MZ")]
    response = staff_client.post("/admin/documents/document/upload/", {"files": files, "collection": collection})

    assert response.status_code == 200
    soup = assert_nothing_injected(response.content.decode(), "upload page")
    names = [row.find("td").get_text() for row in soup.select("#upload-results tbody tr")]
    assert names == [FILE_NAME, "x.exe"]
    stored = Document.objects.get(collection=collection)
    assert stored.source == FILE_NAME
    assert stored.body == "Upload with a hostile name. Xssapple."
