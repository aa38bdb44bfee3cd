"""The API says what reranks now, from the worker's own status: GET /api/v1/status and the docs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def schema_description(client) -> str:
    response = client.get("/api/v1/schema", {"format": "json"})
    assert response.status_code == 200
    return response.json()["info"]["description"]


def test_it_names_the_model_and_kind_that_serve(client, rerank_worker, tiny_model_dir):
    status = client.get("/api/v1/status")

    assert status.status_code == 200
    body = status.json()
    assert body["ready"] is True
    assert (body["model"]["model"], body["model"]["kind"]) == (str(tiny_model_dir), "cross-encoder")
    assert body["model"]["device"] == "cpu" and body["model"]["languages"] is None
    description = schema_description(client)
    assert f"**Reranking now:** `{tiny_model_dir}`, a cross-encoder on cpu (float32" in description
    assert "reranked by a cross-encoder" not in description  # the old, fixed claim


def test_it_says_when_nothing_reranks(client, own_queue):  # a queue no worker serves
    body = client.get("/api/v1/status").json()

    assert body == {"ready": False, "problem": "no rerank worker answered within 2 s"}
    assert "**Reranking now:** nothing (no rerank worker answered within 1 s)" in schema_description(client)
