"""tei-client (a maintained PyPI client of text-embeddings-inference) reranks against the running site."""

from __future__ import annotations

import math

import pytest
from tei_client import HttpClient, ModelType

from search import worker_client

QUERY = "apple nutrition"
TEXTS = [
    "Red Fuji apples are rich in dietary fibre and vitamin C.",
    "Apple announced a new iPhone at its September event.",
    "Pythons swallow rodents and birds whole.",
]
# Seconds the client waits for an answer: the worker's budget in the tests (conftest) and a margin.
CLIENT_TIMEOUT_SECONDS = 60


@pytest.fixture
def tei(live_site) -> HttpClient:
    return HttpClient(f"{live_site}/api/tei", timeout=CLIENT_TIMEOUT_SECONDS)


@pytest.fixture(scope="module")
def direct_scores(rerank_worker) -> list[float]:
    reply = worker_client.rerank(QUERY, [[text] for text in TEXTS])
    assert reply.ok, reply.notice
    return reply.scores


def test_it_reports_a_reranker_in_teis_info_shape(tei, tiny_model_dir):
    info = tei.info()

    assert tei.health() is True
    assert info.server_model_type is ModelType.Reranker
    assert info.server_model_id == str(tiny_model_dir)
    assert info.server_model_dtype == "float32"
    assert info.max_input_length > 0 and info.max_client_batch_size == 200


def test_it_reranks_with_the_workers_scores(tei, direct_scores):
    result = tei.rerank(QUERY, TEXTS, return_text=True)

    assert [rank.index for rank in result.ranks] == sorted(range(len(TEXTS)), key=lambda i: -direct_scores[i])
    for rank in result.ranks:
        assert rank.score == pytest.approx(direct_scores[rank.index], abs=1e-5)
        assert rank.text == TEXTS[rank.index]


def test_it_gives_the_logits_for_raw_scores(tei, direct_scores):
    result = tei.rerank(QUERY, TEXTS, raw_scores=True)

    for rank in result.ranks:
        probability = direct_scores[rank.index]
        assert rank.score == pytest.approx(math.log(probability / (1 - probability)), abs=1e-3)
        assert rank.text is None
