"""Language is detected as en / zh / mixed, and stored with each document."""

from __future__ import annotations

import pytest

from documents.ingest import ingest_bytes
from documents.models import Document
from documents.textsearch import detect_language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Cross-encoders score a query and a passage together.", "en"),
        ("红富士苹果产自山东烟台，口感脆甜。", "zh"),
        ("我们用 PostgreSQL 做全文检索。", "zh"),
        ("The 重排序模型 reranks the candidates from full-text search before showing them.", "mixed"),
        ("12345 -- !!!", "en"),
    ],
)
def test_it_detects_the_language(text, language):
    assert detect_language(text) == language


@pytest.mark.django_db
def test_it_stores_the_detected_language_unless_the_file_names_one(collection):
    ingest_bytes("zh.txt", "苹果是一种常见的水果，富含维生素。".encode(), collection)
    ingest_bytes("mixed.txt", "Search engines 使用倒排索引 to find documents quickly.".encode(), collection)
    ingest_bytes("named.json", b'{"title": "t", "text": "plain English words", "language": "zh"}', collection)
    languages = dict(Document.objects.filter(collection=collection).values_list("source", "language"))
    assert languages == {"zh.txt": "zh", "mixed.txt": "mixed", "named.json": "zh"}
