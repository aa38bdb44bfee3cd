"""Cohere's own Python SDK (v1 Client and v2 ClientV2) reranks against the running site."""

from __future__ import annotations

import cohere
import pytest
from cohere.core.api_error import ApiError

from search import worker_client

QUERY = "apple nutrition"
DOCUMENTS = [
    "Red Fuji apples are rich in dietary fibre and vitamin C.",
    "Apple announced a new iPhone at its September event.",
    "Pythons swallow rodents and birds whole.",
    "红富士苹果富含膳食纤维和维生素。",
]
# Seconds the SDK waits for an answer: the worker's budget in the tests (conftest) and a margin.
SDK_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def direct_scores(rerank_worker) -> list[float]:
    """Return the worker's scores for DOCUMENTS, asked without any API in between."""
    reply = worker_client.rerank(QUERY, [[text] for text in DOCUMENTS])
    assert reply.ok, reply.notice
    return reply.scores


@pytest.fixture
def v1(live_site) -> cohere.Client:
    return cohere.Client(base_url=f"{live_site}/api", api_key="x", timeout=SDK_TIMEOUT_SECONDS)


@pytest.fixture
def v2(live_site) -> cohere.ClientV2:
    return cohere.ClientV2(base_url=f"{live_site}/api", api_key="x", timeout=SDK_TIMEOUT_SECONDS)


def expected_order(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def test_it_reranks_strings_for_the_v1_client(v1, direct_scores, tiny_model_dir):
    response = v1.rerank(query=QUERY, documents=DOCUMENTS, model="rerank-v3.5")

    assert [item.index for item in response.results] == expected_order(direct_scores)
    for item in response.results:
        assert item.relevance_score == pytest.approx(direct_scores[item.index], abs=1e-5)
        assert item.document is None
    assert response.id
    assert response.meta.api_version.version == "1"
    assert response.meta.billed_units.search_units == 1
    assert response.model == str(tiny_model_dir)  # the model that served, not the one asked for
    assert response.kind == "cross-encoder"


def test_it_reranks_objects_and_returns_them_for_the_v1_client(v1, direct_scores):
    documents = [{"text": text, "source": f"doc-{i}"} for i, text in enumerate(DOCUMENTS)]

    response = v1.rerank(query=QUERY, documents=documents, top_n=2, return_documents=True)

    assert [item.index for item in response.results] == expected_order(direct_scores)[:2]
    for item in response.results:
        assert item.document.text == DOCUMENTS[item.index]
        assert item.document.source == f"doc-{item.index}"  # the object as it was sent


def test_it_reads_the_rank_fields_in_order_for_the_v1_client(v1):
    documents = [{"title": "Apples", "body": text} for text in DOCUMENTS]
    expected = worker_client.rerank(QUERY, [[f"title: Apples\nbody: {text}"] for text in DOCUMENTS])
    assert expected.ok, expected.notice

    response = v1.rerank(query=QUERY, documents=documents, rank_fields=["title", "body"])

    for item in response.results:
        assert item.relevance_score == pytest.approx(expected.scores[item.index], abs=1e-5)


def test_it_reranks_for_the_v2_client(v2, direct_scores, tiny_model_dir):
    response = v2.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS, top_n=3)

    assert [item.index for item in response.results] == expected_order(direct_scores)[:3]
    for item in response.results:
        assert item.relevance_score == pytest.approx(direct_scores[item.index], abs=1e-5)
    assert response.meta.api_version.version == "2"
    assert response.model == str(tiny_model_dir)


def test_it_answers_a_bad_v2_request_with_the_sdks_error(v2):
    with pytest.raises(ApiError) as raised:
        v2.rerank(model="rerank-v3.5", query="", documents=DOCUMENTS)

    assert raised.value.status_code == 400
    assert list(raised.value.body["fields"]) == ["query"]
