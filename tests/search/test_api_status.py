"""The API says what reranks now: GET /api/v1/status from the worker's own status, the schema (and
so the docs) from the worker's heartbeat, with no task sent; the schema is throttled."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from search import worker_client
from search.throttling import SchemaThrottle
from tests.support.session import SESSION_QUEUE
from worker.protocol import Heartbeat

pytestmark = pytest.mark.django_db

# Schema requests in the test of the heartbeat: each used to send the worker a status task.
SCHEMA_REQUESTS = 5
# The schema's rate for one anonymous client in the throttle's test.
SCHEMA_RATE = 3


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

    semantic = body.pop("semantic")
    assert body == {"ready": False, "problem": "no rerank worker answered within 2 s"}
    assert semantic["embedder"] == "" and semantic["stored"] is None
    assert "**Reranking now:** nothing (no rerank worker has reported in for 6 s)" in schema_description(client)


def test_it_reads_what_serves_from_the_heartbeat_and_sends_the_worker_no_task(
    client, rerank_worker, tiny_model_dir, own_queue
):
    """The worker's heartbeat says what it serves; nobody takes tasks from this test's queue, so a
    status task sent there would stay in Redis (and the schema would say no worker answered)."""
    descriptions = []
    for _ in range(SCHEMA_REQUESTS):
        # The session worker's latest heartbeat, as just written by a worker of this queue.
        beat = cache.get(Heartbeat.key(SESSION_QUEUE))
        cache.set(Heartbeat.key(own_queue), {**beat, "at": time.time()}, timeout=60)
        descriptions.append(schema_description(client))

    assert worker_client.queue_length(own_queue) == 0  # no task was sent
    for description in descriptions:
        assert f"**Reranking now:** `{tiny_model_dir}`, a cross-encoder on cpu (float32" in description


def test_it_throttles_the_schema(client, monkeypatch):
    monkeypatch.setattr(SchemaThrottle, "THROTTLE_RATES", {"anon_schema": f"{SCHEMA_RATE}/min"})
    for _ in range(SCHEMA_RATE):
        assert client.get("/api/v1/schema").status_code == 200

    refused = client.get("/api/v1/schema", {"format": "json"})

    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "error" in refused.json()
