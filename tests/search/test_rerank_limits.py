"""Every rerank API shape (Cohere v1, v2, TEI) keeps the same limits and the same language rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        # The script tells Chinese from the rest, and no more (README, "Query languages"): a French
        # query reads as English and is scored, as the README and the schema now say.
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
