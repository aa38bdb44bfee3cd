"""The rerank APIs check every limit before the work it limits (issue 25, findings 1 and 2).

A request over a limit is refused from its sizes: the number of JSON tokens is counted on the raw
body, the number of documents before any is validated, and a Cohere document's joined rank_fields
are summed, never built. The tests assert what was done (the status, the message, the memory
Python allocated), never how long it took: bench/rerank_limits.py measures that.
"""

from __future__ import annotations

import json
import tracemalloc

import pytest

from documents.json_limits import tokens_problem
from search.rerank_api import MAX_DOCUMENT_FIELDS, MAX_RANK_FIELDS, CohereRerankParser
from search.reranking import MAX_RERANK_DOCUMENTS, MAX_RERANK_TEXT_CHARS

pytestmark = pytest.mark.django_db

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
