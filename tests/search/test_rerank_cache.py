"""Rerank scores cached in Redis: identical results, and a miss when a document's content changes."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from documents.services import DocumentInput, document_create, document_update
from search import rerank_cache, worker_client
from search.passages import rerank_text
from search.services import search_run
from worker.protocol import ModelInfo

pytestmark = pytest.mark.django_db

# Seconds the tests let the real worker take (a busy machine, a fresh worker).
GENEROUS_SECONDS = 30.0


@pytest.fixture(autouse=True)
def _cache_for_the_test_worker(rerank_worker, tiny_model_dir: Path, settings):
    """The web is configured for the model the session's worker serves, so replies are cached."""
    settings.RERANKER_MODEL = str(tiny_model_dir)
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    settings.RERANK_CACHE_SECONDS = 300


@pytest.fixture
def word() -> str:
    """A word no other document has: the query finds exactly this test's documents."""
    return f"zq{uuid.uuid4().hex[:10]}"


@pytest.fixture
def collection(word: str) -> str:
    names = ["Orchard notes", "Harvest diary", "Cider making"]
    collection = f"cache-{word}"
    for number, title in enumerate(names):
        body = f"{title}: apples and {word} number {number}. " + "More orchard text here. " * (number + 1)
        document_create(item=DocumentInput(title=title, body=body), collection=collection)
    return collection


def scores(outcome) -> dict[int, float]:
    return {row.document_id: row.rerank_score for row in outcome.reranked}


def test_it_returns_identical_results_from_the_cache(word, collection):
    first = search_run(query=f"apples {word}", collection=collection)
    second = search_run(query=f"apples {word}", collection=collection)
    assert first.is_reranked and second.is_reranked, first.notices + second.notices
    assert first.timings["rerank_cached"] == 0
    assert second.timings["rerank_cached"] == 3
    assert second.timings["model_ms"] is None  # the worker was not asked
    assert [(r.document_id, r.rerank_score, r.best_chunk) for r in second.reranked] == [
        (r.document_id, r.rerank_score, r.best_chunk) for r in first.reranked
    ]
    assert second.reranker == first.reranker


def test_it_scores_a_document_again_when_its_content_changes(word, collection):
    from documents.models import Chunk, Document

    before = search_run(query=f"apples {word}", collection=collection)
    changed = Document.objects.get(collection=collection, title="Harvest diary")
    document_update(document=changed, body=f"Harvest diary: apples and {word}, rewritten. " + "New text. " * 30)
    after = search_run(query=f"apples {word}", collection=collection)
    assert after.is_reranked, after.notices
    assert after.timings["rerank_cached"] == 2  # the two unchanged documents
    assert after.timings["model_ms"] is not None  # the changed one went to the worker
    unchanged = {pk: score for pk, score in scores(before).items() if pk != changed.pk}
    assert {pk: score for pk, score in scores(after).items() if pk != changed.pk} == unchanged
    # The changed document's score is its new text's, as the worker scores it uncached. (Comparing
    # it with the old score proves nothing: the test model's scores lie so close together that two
    # texts can round to the same 4 places, 0.4963 both, seen once in a random-order run.)
    texts = [
        rerank_text(changed.title, chunk.text) for chunk in Chunk.objects.filter(document=changed).order_by("ordinal")
    ]
    fresh = worker_client.rerank(f"apples {word}", [texts])
    assert fresh.ok, fresh.notice
    assert scores(after)[changed.pk] == pytest.approx(round(fresh.scores[0], 4), abs=1e-4)


def test_it_keys_by_model_and_max_length(settings):
    keys = rerank_cache.entry_keys("apples", [["text"]], ["1:abc"])
    settings.RERANKER_MAX_LENGTH = 256
    assert rerank_cache.entry_keys("apples", [["text"]], ["1:abc"]) != keys
    settings.RERANKER_MODEL = "another/model"
    assert rerank_cache.entry_keys("apples", [["text"]], ["1:abc"]) != keys


def test_it_caches_a_fallback_under_the_model_that_served(tiny_model_dir: Path):
    configured = ModelInfo.from_dict(
        {"requested": str(tiny_model_dir), "max_length": 512, "fallback_reason": "", "model": "configured"}
    )
    fallback = replace(configured, model="packaged e5", fallback_reason="offline", languages=["en", "zh"])
    assert rerank_cache.cacheable(configured)
    assert rerank_cache.cacheable(fallback)
    assert not rerank_cache.cacheable(replace(configured, max_length=256))
    assert not rerank_cache.cacheable(replace(configured, requested="another/model"))
    # Scores of one served model never answer for another.
    assert rerank_cache.entry_keys("apples", [["text"]], ["1:abc"], model=fallback) != rerank_cache.entry_keys(
        "apples", [["text"]], ["1:abc"], model=configured
    )
