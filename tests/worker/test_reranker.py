"""The model holder loads real models offline and scores with them."""

from pathlib import Path

import pytest

from worker.reranker import PACKAGED_MINILM, ModelUnavailable, load_model


def test_it_loads_the_tiny_cross_encoder_through_the_hub_loading_code(tiny_model_dir: Path):
    reranker = load_model(str(tiny_model_dir), device="cpu", max_length=128, batch_size=4)
    assert reranker.info.kind == "cross-encoder"
    assert reranker.info.dtype == "float32"
    scores = reranker.score("apple nutrition", ["apples contain vitamin c", "a phone launch", "x" * 5000])
    assert len(scores) == 3
    assert all(0.0 < s < 1.0 for s in scores)  # sigmoid of a logit


def test_it_scores_in_the_input_order_despite_length_sorting(tiny_model_dir: Path):
    reranker = load_model(str(tiny_model_dir), device="cpu", max_length=128, batch_size=2)
    texts = ["long " * 60, "short", "medium length text here", "s"]
    together = reranker.score("query", texts)
    alone = [reranker.score("query", [text])[0] for text in texts]
    assert together == pytest.approx(alone, abs=1e-5)


def test_it_takes_the_max_over_a_documents_chunks(tiny_model_dir: Path):
    reranker = load_model(str(tiny_model_dir), device="cpu", max_length=128, batch_size=8)
    texts = ["first chunk", "second chunk about apples", "third"]
    flat = reranker.score("apples", texts)
    scores, best = reranker.score_groups("apples", [texts, ["only one"]])
    assert scores[0] == pytest.approx(max(flat), abs=1e-6)
    assert best[0] == flat.index(max(flat))
    assert best[1] == 0


def test_it_loads_the_packaged_minilm_as_a_bi_encoder():
    reranker = load_model(PACKAGED_MINILM, device="cpu", max_length=256, batch_size=8)
    assert reranker.info.kind == "bi-encoder"
    scores = reranker.score(
        "python snake diet",
        ["Pythons swallow rodents and birds whole after constricting them.", "Python lists support slicing."],
    )
    assert scores[0] > scores[1]


def test_it_explains_a_missing_hub_model_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as caught:
        load_model("BAAI/bge-reranker-v2-m3-not-cached", device="cpu", max_length=512, batch_size=8)
    message = str(caught.value)
    assert "unreachable" in message and "RERANKER_MODEL" in message


def test_it_rejects_a_missing_local_directory(tmp_path: Path):
    with pytest.raises(ModelUnavailable, match="does not exist"):
        load_model(str(tmp_path / "nope" / "model"), device="cpu", max_length=512, batch_size=8)
