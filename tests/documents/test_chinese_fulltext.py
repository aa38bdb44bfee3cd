"""Chinese words inside longer runs are found through the stored, segmented search vector."""

from __future__ import annotations

import pytest

from documents.ingest import ingest_bytes
from search.backends import find_candidates

pytestmark = pytest.mark.django_db


def test_it_finds_a_word_inside_a_longer_chinese_run(collection):
    report = ingest_bytes("fruit.txt", "山东烟台的红富士苹果口感脆甜。".encode(), collection)
    ingest_bytes("other.txt", "今天的天气很好，适合散步。".encode(), collection)
    found = find_candidates("苹果", k=10, collection=collection).candidates
    assert [candidate.document_id for candidate in found] == report.document_ids


def test_it_finds_nothing_for_a_word_the_collection_lacks(collection):
    ingest_bytes("fruit.txt", "山东烟台的红富士苹果口感脆甜。".encode(), collection)
    assert find_candidates("香蕉", k=10, collection=collection).candidates == []
