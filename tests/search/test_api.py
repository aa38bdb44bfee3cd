"""The REST API v1: search shape, validation, rerank, throttling, schema and docs."""

from __future__ import annotations

import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.core.management import call_command

from search import worker_client
from search.throttling import SearchThrottle
from tests.support.clients import unique_address
from tests.support.processes import ROOT

QUERY = "苹果营养价值"
# Seconds the tests let the real worker take (a fresh worker's first inference is slow).
GENEROUS_SECONDS = 30.0
RESULT_FIELDS = {
    "document_id",
    "title",
    "snippet",
    "snippet_text",
    "snippet_highlights",
    "language",
    "rank",
    "fulltext_rank",
    "fulltext_score",
    "rerank_rank",
    "rerank_score",
    "model_score",
    "best_chunk",
    "movement",
    "new_in_top",
    "found_by_meaning",
    "url",
}
RERANK_DOCUMENTS = [
    "Red Fuji apples are rich in dietary fibre and vitamin C.",
    "Apple announced a new iPhone at its September event.",
    "Pythons swallow rodents and birds whole.",
    "红富士苹果富含膳食纤维和维生素。",
]


@pytest.fixture
def generous_budget(settings):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS


# --- GET /api/v1/search -------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_returns_both_orderings_in_the_documented_shape(client, rerank_worker, tiny_model_dir, generous_budget):
    response = client.get("/api/v1/search", {"q": QUERY, "k": 5, "k_initial": 20})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert {"query", "fulltext", "reranked", "reranker", "timings", "notice"} <= body.keys()
    assert body["query"] == QUERY
    assert (body["k"], body["k_initial"]) == (5, 20)
    assert body["reranked_applied"] is True and body["rerank_status"] == "ok"
    assert body["notice"] == ""
    assert body["rerank_bm25_weight"] == 0.0
    assert body["reranker"]["model"] == str(tiny_model_dir)
    assert body["reranker"]["kind"] == "cross-encoder"
    assert body["reranker"]["device"] == "cpu"
    for name in ("fulltext_ms", "rerank_ms", "model_ms", "total_ms"):
        assert isinstance(body["timings"][name], int | float), name

    fulltext, reranked = body["fulltext"], body["reranked"]
    assert len(fulltext) == len(reranked) == 5
    for row in fulltext + reranked:
        assert set(row) == RESULT_FIELDS
        assert isinstance(row["rerank_score"], float)
        # A cross-encoder's order is its own score: no BM25 blended in.
        assert row["rerank_score"] == row["model_score"]
        assert row["movement"] == row["fulltext_rank"] - row["rerank_rank"]
        assert row["url"].endswith(f"/documents/{row['document_id']}")
    assert [row["rank"] for row in fulltext] == [1, 2, 3, 4, 5]
    assert [row["fulltext_rank"] for row in fulltext] == [1, 2, 3, 4, 5]
    assert [row["rank"] for row in reranked] == [1, 2, 3, 4, 5]
    assert [row["rerank_rank"] for row in reranked] == [1, 2, 3, 4, 5]
    scores = [row["rerank_score"] for row in reranked]
    assert scores == sorted(scores, reverse=True)
    full_scores = [row["fulltext_score"] for row in fulltext]
    assert all(score > 0 for score in full_scores)  # BM25: unbounded above, best first
    assert full_scores == sorted(full_scores, reverse=True)
    assert any("<mark>苹果</mark>" in row["snippet"] for row in fulltext)


@pytest.mark.django_db
def test_it_answers_an_empty_query_with_empty_orderings(client):
    body = client.get("/api/v1/search", {"q": ""}).json()
    assert body["fulltext"] == [] and body["reranked"] == []
    assert body["candidate_count"] == 0
    assert body["reranked_applied"] is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": QUERY, "k": "0"}, "k"),
        ({"q": QUERY, "k": "ten"}, "k"),
        ({"q": QUERY, "k": "201"}, "k"),
        ({"q": QUERY, "k_initial": "0"}, "k_initial"),
        ({"q": QUERY, "k_initial": "201"}, "k_initial"),
        ({"q": QUERY, "k_initial": "1.5"}, "k_initial"),
        ({}, "q"),
    ],
)
def test_it_rejects_bad_parameters_with_a_json_error(client, params, field):
    response = client.get("/api/v1/search", params)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "Invalid request."
    assert list(body["fields"]) == [field]


# --- POST /api/v1/rerank ------------------------------------------------------------------------


def post_rerank(client, headers: dict | None = None, **payload):
    return client.post("/api/v1/rerank", payload, content_type="application/json", **(headers or {}))


def score_command(query: str, document: str) -> float:
    out = StringIO()
    call_command("score", query, document, "--timeout", str(GENEROUS_SECONDS), stdout=out)
    return float(re.search(r"^score: (\S+)$", out.getvalue(), re.M).group(1))


def test_it_reranks_texts_with_the_workers_scores(client, rerank_worker, tiny_model_dir, generous_budget):
    query = "apple nutrition"
    response = post_rerank(client, query=query, documents=RERANK_DOCUMENTS)

    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["kind"]) == (str(tiny_model_dir), "cross-encoder")
    results = body["results"]
    assert sorted(item["index"] for item in results) == [0, 1, 2, 3]
    scores = [item["relevance_score"] for item in results]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores), "distinct texts, distinct scores"
    for item in results:
        assert set(item) == {"index", "relevance_score"}
        assert item["relevance_score"] == pytest.approx(score_command(query, RERANK_DOCUMENTS[item["index"]]), abs=1e-5)


def test_it_keeps_only_the_top_n(client, rerank_worker, generous_budget):
    everything = post_rerank(client, query="apple nutrition", documents=RERANK_DOCUMENTS).json()["results"]
    top = post_rerank(
        client, query="apple nutrition", documents=RERANK_DOCUMENTS, top_n=2, return_documents=True
    ).json()["results"]

    assert [item["index"] for item in top] == [item["index"] for item in everything[:2]]
    assert [item["relevance_score"] for item in top] == pytest.approx(
        [item["relevance_score"] for item in everything[:2]], abs=1e-5
    )
    assert [item["document"]["text"] for item in top] == [RERANK_DOCUMENTS[item["index"]] for item in top]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"query": "apple", "documents": []}, "documents"),
        ({"query": "apple"}, "documents"),
        ({"documents": ["text"]}, "query"),
        ({"query": "apple", "documents": ["text"], "top_n": 0}, "top_n"),
    ],
)
def test_it_rejects_a_bad_rerank_request_with_a_json_error(client, payload, field):
    response = post_rerank(client, **payload)

    assert response.status_code == 400
    assert response.json()["error"] == "Invalid request."
    assert list(response.json()["fields"]) == [field]


def test_it_scores_the_same_pair_the_same_way_through_every_path(rerank_worker, generous_budget):
    # The API above is compared with the score command; the command with the client itself.
    document = RERANK_DOCUMENTS[0]
    reply = worker_client.rerank("apple nutrition", [[document]])
    assert reply.ok, reply.notice
    assert score_command("apple nutrition", document) == pytest.approx(reply.scores[0], abs=1e-5)


# --- throttling ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_throttles_anonymous_searches_with_retry_after(client, monkeypatch):
    monkeypatch.setattr(SearchThrottle, "THROTTLE_RATES", {"anon_search": "2/min"})
    address = unique_address()
    try:
        for _ in range(2):
            assert client.get("/api/v1/search", {"q": ""}, REMOTE_ADDR=address).status_code == 200

        throttled = client.get("/api/v1/search", {"q": ""}, REMOTE_ADDR=address)
        rerank = post_rerank(client, {"REMOTE_ADDR": address}, query="apple", documents=["text"])

        assert throttled.status_code == 429
        assert 1 <= int(throttled["Retry-After"]) <= 60
        body = throttled.json()
        assert body["error"].startswith("Request was throttled.")
        assert body["retry_after_seconds"] == int(throttled["Retry-After"])
        assert rerank.status_code == 429  # the same anonymous budget covers both endpoints
        assert client.get("/api/v1/search", {"q": ""}, REMOTE_ADDR=unique_address()).status_code == 200
    finally:
        cache.delete(f"throttle_anon_search_{address}")


# --- schema and docs ----------------------------------------------------------------------------


def test_it_publishes_a_schema_that_validates_without_warnings(tmp_path: Path):
    target = tmp_path / "schema.yml"
    completed = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr[-4000:]
    schema = yaml.safe_load(target.read_text())
    assert {"/api/v1/search", "/api/v1/rerank", "/api/v2/rerank", "/api/tei/rerank"} <= schema["paths"].keys()


@pytest.mark.django_db
def test_it_describes_each_result_in_the_schema(client):
    response = client.get("/api/v1/schema", {"format": "json"})

    assert response.status_code == 200
    schemas = response.json()["components"]["schemas"]
    search_output = schemas["SearchOutput"]["properties"]
    assert search_output["fulltext"]["items"] == {"$ref": "#/components/schemas/SearchResult"}
    assert search_output["reranked"]["items"] == {"$ref": "#/components/schemas/SearchResult"}
    assert set(schemas["SearchResult"]["properties"]) == RESULT_FIELDS
    rerank_output = schemas["CohereRerankOutput"]["properties"]
    assert rerank_output["results"]["items"] == {"$ref": "#/components/schemas/RerankResult"}
    assert {"index", "relevance_score"} <= set(schemas["RerankResult"]["required"])


@pytest.mark.django_db
def test_it_renders_the_docs_without_any_external_url(client):
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("drf_spectacular_sidecar/swagger-ui-dist/" in asset for asset in assets), assets
    external = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I)
    assert external == [], external
    for asset in assets:
        if "drf_spectacular_sidecar" in asset:
            path = asset.split("/static/", 1)[1].split("?", 1)[0]
            assert finders.find(path), f"{path} is not among the site's static files"
