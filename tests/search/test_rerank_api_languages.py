"""POST /api/v1/rerank follows the page's language rule: a query the model does not serve gets a 422 saying so."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from searchsite.celery import app
from tests.conftest import child_env, wait_until_ready
from tests.support.clients import _own_client_address  # noqa: F401 - autouse fixture
from tests.support.processes import start_worker

pytestmark = pytest.mark.django_db

GENEROUS_SECONDS = 30.0


@pytest.fixture
def english_only_worker(settings, tiny_model_dir: Path, artifacts_dir: Path):
    queue = f"rerank-lang-{uuid.uuid4().hex[:8]}"
    settings.RERANK_QUEUE = queue
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    worker = start_worker(
        child_env(),
        artifacts_dir / f"worker-{queue}.log",
        queue=queue,
        model=str(tiny_model_dir),
        extra_env={"RERANKER_FALLBACK_MODEL": "", "RERANKER_LANGUAGES": "en"},
    )
    try:
        assert wait_until_ready(worker).get("ready")
        yield worker
    finally:
        worker.stop()
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)


def post(client, query: str):
    body = {"query": query, "documents": ["苹果富含维生素", "apples are rich in vitamin c"]}
    return client.post("/api/v1/rerank", json.dumps(body), content_type="application/json")


def test_it_says_the_model_does_not_serve_the_querys_language(client, english_only_worker):
    refused = post(client, "苹果营养价值")
    assert refused.status_code == 422
    assert refused.json()["status"] == "skipped"
    assert "reranks only queries in: en" in refused.json()["error"]
    served = post(client, "apple nutrition")
    assert served.status_code == 200
    assert len(served.json()["results"]) == 2
