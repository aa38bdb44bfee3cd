"""Every rerank API shape (Cohere v1, v2, TEI) keeps the same limits and the same language rule.

The rerank APIs check every limit before the work it limits (issue 25, findings 1 and 2).

A request over a limit is refused from its sizes: the number of JSON tokens is counted on the raw
body, the number of documents before any is validated, and a Cohere document's joined rank_fields
are summed, never built. The tests assert what was done (the status, the message, the memory
Python allocated), never how long it took: bench/rerank_limits.py measures that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from documents.json_limits import tokens_problem
from search.rerank_api import MAX_DOCUMENT_FIELDS, MAX_RANK_FIELDS, CohereRerankParser
from search.reranking import MAX_RERANK_DOCUMENTS, MAX_RERANK_QUERY_CHARS, MAX_RERANK_TEXT_CHARS
from tests.support.session import start_own_worker, wait_for_worker

pytestmark = pytest.mark.django_db

GENEROUS_SECONDS = 30.0
SHAPES = {
    "cohere-v1": ("/api/v1/rerank", "documents"),
    "cohere-v2": ("/api/v2/rerank", "documents"),
    "tei": ("/api/tei/rerank", "texts"),
}


def post(client, shape: str, query: str, texts: list[str], **extra):
    path, field = SHAPES[shape]
    return client.post(path, {"query": query, field: texts, **extra}, content_type="application/json")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    ("query", "texts", "says"),
    [
        ("apple", ["text"] * (MAX_RERANK_DOCUMENTS + 1), f"at most {MAX_RERANK_DOCUMENTS}"),
        ("apple", ["short", "x" * (MAX_RERANK_TEXT_CHARS + 1)], "Document 1 has 20,001 characters"),
        ("q" * (MAX_RERANK_QUERY_CHARS + 1), ["text"], f"at most {MAX_RERANK_QUERY_CHARS:,}"),
    ],
    ids=["documents", "characters", "query"],
)
def test_it_refuses_more_than_the_limits_with_413(client, shape, query, texts, says):
    response = post(client, shape, query, texts)

    assert response.status_code == 413, response.content[:300]
    body = response.json()
    assert says in body["error"]
    assert body["status"] == "too_large"
    if shape == "tei":
        assert body["error_type"] == "validation"


@pytest.mark.parametrize("shape", SHAPES)
def test_it_answers_malformed_input_as_each_shape_does(client, shape):
    response = post(client, shape, "apple", [42])

    body = response.json()
    if shape == "tei":
        # TEI answers input it cannot read with 422 and {"error", "error_type"}.
        assert response.status_code == 422
        assert body["error_type"] == "validation" and body["error"] == "texts: Not a valid string."
    else:
        assert response.status_code == 400
        assert list(body["fields"]) == ["documents"]
        # Cohere's clients read `message` (issue 26 §4): the first problem, named.
        assert body["message"] == 'documents: Expected a string or an object of strings such as {"text": "..."}.'


@pytest.mark.parametrize("shape", ["cohere-v1", "cohere-v2"])
def test_every_cohere_error_carries_a_message(client, shape):
    too_many = post(client, shape, "apple", ["text"] * (MAX_RERANK_DOCUMENTS + 1))
    not_json = client.post(SHAPES[shape][0], "{", content_type="application/json")

    assert too_many.json()["message"] == too_many.json()["error"]
    assert not_json.status_code == 400 and not_json.json()["message"].startswith("JSON parse error")


def test_it_truncates_long_texts_for_tei_only_when_asked(client, rerank_worker, settings):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    texts = ["Apples are fruit. " + "x" * MAX_RERANK_TEXT_CHARS, "Pythons are snakes."]

    assert post(client, "tei", "apple", texts).status_code == 413
    response = post(client, "tei", "apple", texts, truncate=True, return_text=True)

    assert response.status_code == 200, response.content[:300]
    assert sorted(rank["index"] for rank in response.json()) == [0, 1]
    assert {rank["text"] for rank in response.json()} == set(texts)  # the texts as sent


def test_it_refuses_an_empty_tei_batch_as_tei_does(client):
    response = post(client, "tei", "apple", [])

    assert response.status_code == 400
    assert response.json() == {"error": "`texts` cannot be empty", "error_type": "empty"}


@pytest.fixture
def english_only_worker(own_queue, tiny_model_dir: Path, artifacts_dir: Path, monkeypatch):
    """A worker of this test's own that reranks English queries only (RERANKER_LANGUAGES=en)."""
    monkeypatch.setenv("RERANKER_LANGUAGES", "en")
    worker = start_own_worker(own_queue, str(tiny_model_dir), artifacts_dir)
    try:
        status = wait_for_worker(worker)
        assert status.get("ready") and status["model"]["languages"] == ["en"], status
        yield worker
    finally:
        worker.stop()


def test_it_applies_the_workers_language_rule_to_every_shape(client, english_only_worker, settings):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS

    for shape in SHAPES:
        chinese = post(client, shape, "苹果的营养价值", ["红富士苹果富含膳食纤维。"])
        english = post(client, shape, "apple nutrition", ["Apples are rich in fibre."])

        assert chinese.status_code == 422, (shape, chinese.content[:300])
        assert chinese.json()["status"] == "language"
        assert "reranks only queries in: en; this query is zh" in chinese.json()["error"]
        assert english.status_code == 200, (shape, english.content[:300])
        # The script tells Chinese from the rest, and no more (docs/engine.md, "Query languages"): a French
        # query reads as English and is scored, as docs/engine.md and the schema now say.
        french = post(client, shape, "valeur nutritive des pommes", ["Les pommes sont riches en fibres."])
        assert french.status_code == 200, (shape, french.content[:300])


@pytest.mark.parametrize("languages", ["fr", "en,de"])
def test_it_refuses_to_start_with_a_language_it_cannot_tell(languages):
    env = {**os.environ, "RERANKER_LANGUAGES": languages, "DATABASE_URL": "postgres://u@localhost:5432/x"}
    started = subprocess.run(
        [sys.executable, "-c", "import searchsite.settings"], env=env, capture_output=True, text=True, check=False
    )

    assert started.returncode != 0
    assert "only en and zh can be named" in started.stderr


COHERE = ["/api/v1/rerank", "/api/v2/rerank"]


def post_measured(client, path: str, body: dict) -> tuple[object, int, int]:
    """Return the response, the body's size in bytes and the peak of Python's allocations while
    the request was answered (the body is encoded before measuring starts)."""
    raw = json.dumps(body).encode()
    tracemalloc.start()
    try:
        response = client.post(path, raw, content_type="application/json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return response, len(raw), peak


@pytest.mark.parametrize("path", COHERE)
def test_it_sizes_joined_rank_fields_without_building_them(client, path):
    # 200 documents of 20,000 characters, each read 50 times (rank_fields may repeat a name): a
    # 4 MB body whose texts would join to a million characters each, 200 MB in all.
    body = {
        "query": "q",
        "documents": [{"a": "x" * MAX_RERANK_TEXT_CHARS}] * MAX_RERANK_DOCUMENTS,
        "rank_fields": ["a"] * MAX_RANK_FIELDS,
    }

    response, size, peak = post_measured(client, path, body)

    assert response.status_code == 413, response.content[:300]
    assert "Document 0 has 1,000," in response.json()["message"]
    # Reading the body and decoding it cost a few times its size; joining would cost 50 times.
    assert peak < 10 * size, f"{peak:,} bytes allocated for a {size:,}-byte body"


@pytest.mark.parametrize("path", COHERE)
def test_it_refuses_too_many_rank_fields_before_reading_documents(client, path):
    body = {"query": "q", "documents": [{"a": "x"}] * MAX_RERANK_DOCUMENTS, "rank_fields": ["a"] * 5_000}

    response, size, peak = post_measured(client, path, body)

    assert response.status_code == 413, response.content[:300]
    assert response.json()["status"] == "too_large"
    assert f"at most {MAX_RANK_FIELDS}" in response.json()["message"]
    assert peak < 10 * size + 1_000_000, f"{peak:,} bytes allocated for a {size:,}-byte body"


@pytest.mark.parametrize("path", COHERE)
def test_it_refuses_a_document_with_too_many_fields(client, path):
    document = {f"f{i}": "x" for i in range(MAX_DOCUMENT_FIELDS + 1)}

    response = client.post(path, {"query": "q", "documents": [document]}, content_type="application/json")

    assert response.status_code == 413, response.content[:300]
    assert f"Document 0 has {MAX_DOCUMENT_FIELDS + 1} fields" in response.json()["message"]


@pytest.mark.parametrize(
    ("path", "field"), [(COHERE[0], "documents"), (COHERE[1], "documents"), ("/api/tei/rerank", "texts")]
)
def test_it_counts_documents_before_validating_each(client, path, field):
    # Each element is wrong, but there are too many of them: the count answers first, as it
    # must when there are millions (each would be validated, and each error listed).
    response = client.post(
        path, {"query": "q", field: [42] * (MAX_RERANK_DOCUMENTS + 1)}, content_type="application/json"
    )

    assert response.status_code == 413, response.content[:300]
    assert f"at most {MAX_RERANK_DOCUMENTS}" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "field"), [(COHERE[0], "documents"), (COHERE[1], "documents"), ("/api/tei/rerank", "texts")]
)
def test_it_refuses_a_million_documents_before_decoding_them(client, path, field):
    # 1,000,000 two-character documents in a 6 MB body: decoding alone would allocate a million
    # strings (about 60 MB), and validating them a million more.
    body = {"query": "q", field: ["xy"] * 1_000_000}

    response, size, peak = post_measured(client, path, body)

    assert response.status_code == 413, response.content[:300]
    assert response.json()["status"] == "too_large"
    assert "strings, commas and brackets" in response.json()["error"]
    assert peak < 4 * size, f"{peak:,} bytes allocated for a {size:,}-byte body"


def test_the_token_bound_takes_the_largest_request_we_accept():
    # 200 documents of 50 fields and 50 rank_fields, besides the other parameters.
    names = [f"field{i}" for i in range(MAX_RANK_FIELDS)]
    body = {
        "query": "q",
        "documents": [dict.fromkeys(names, "v")] * MAX_RERANK_DOCUMENTS,
        "rank_fields": names,
        "top_n": 3,
        "return_documents": True,
        "model": "rerank-v3.5",
    }
    assert tokens_problem(json.dumps(body).encode(), max_tokens=CohereRerankParser.max_tokens) is None
