"""Chunks follow sentences (Chinese punctuation too), fit the token budget, overlap, map back."""

from __future__ import annotations

import itertools

import pytest

from documents.chunking import estimate_tokens, split_into_chunks
from documents.services import DocumentInput, document_create

CHINESE = (
    "苹果是一种常见的水果。红富士苹果产自山东烟台，口感脆甜！你吃过青苹果吗？"
    "苹果富含维生素和膳食纤维；每天一个苹果有益健康。"
    "苹果树在春天开花，秋天结果。果农在九月开始采摘，然后把苹果运往全国各地的市场。"
)
MIXED = (
    "The reranker reads each chunk whole. 重排序模型逐块阅读文档。Chunks overlap by one sentence. 这样答案不会被切断！"
)


def test_it_splits_chinese_text_at_sentence_punctuation():
    chunks = split_into_chunks(CHINESE, max_tokens=40, overlap_tokens=20)
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.text[-1] in "。！？；", chunk.text


def test_it_maps_every_chunk_back_to_the_body():
    for body in (CHINESE, MIXED, "  leading space.\n\nNew paragraph here.  \n"):
        for chunk in split_into_chunks(body, max_tokens=24, overlap_tokens=10):
            assert body[chunk.start : chunk.end] == chunk.text
            assert chunk.text == chunk.text.strip()


def test_it_keeps_chunks_under_the_token_budget():
    long_sentence = "word " * 500 + "。" + "字" * 300
    for body in (CHINESE * 5, MIXED * 10, long_sentence):
        chunks = split_into_chunks(body, max_tokens=50)
        assert chunks
        assert all(estimate_tokens(chunk.text) <= 50 for chunk in chunks)


def test_it_repeats_the_previous_sentence_as_overlap():
    chunks = split_into_chunks(CHINESE, max_tokens=40, overlap_tokens=20)
    overlapping = [(a, b) for a, b in itertools.pairwise(chunks) if b.start < a.end]
    assert overlapping, [c.text for c in chunks]
    for earlier, later in overlapping:
        shared = CHINESE[later.start : earlier.end]
        assert earlier.text.endswith(shared) and later.text.startswith(shared)


@pytest.mark.django_db
def test_it_stores_chunks_whose_offsets_point_into_the_stored_body(collection, settings):
    settings.DOCUMENTS_CHUNK_TOKENS = 40
    document = document_create(item=DocumentInput(title="苹果", body=CHINESE * 2), collection=collection).document
    chunks = list(document.chunks.order_by("ordinal"))
    assert len(chunks) > 2
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    assert all(document.body[chunk.start : chunk.end] == chunk.text for chunk in chunks)
