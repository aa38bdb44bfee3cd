"""The worker's batching thread: concurrent searches share passes and get the scores of one-by-one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from worker.batching import BatchingReranker, CallerGone, Overloaded
from worker.reranker import load_model

SEARCHES = [
    ("apple nutrition", [["apples contain vitamin c and fibre " * 8, "a short chunk"], ["a phone launch event"]]),
    ("苹果营养价值", [["苹果富含维生素和膳食纤维。" * 6], ["iPhone 发布会", "红富士 " * 30, "x"]]),
    ("python snake diet", [["Pythons swallow rodents whole."], [], ["Python lists support slicing. " * 12]]),
    ("coffee history java", [["Java coffee and colonial trade " * 10, "a cup of java"]]),
]


@pytest.fixture(scope="module")
def reranker(tiny_model_dir: Path):
    return load_model(str(tiny_model_dir), device="cpu", max_length=128, batch_size=4)


def engine(reranker, **options) -> BatchingReranker:
    settings = {"max_batch_tokens": 1024, "max_batch_pairs": 16, "max_queued_pairs": 1000, "gather_ms": 2.0}
    return BatchingReranker(reranker, **{**settings, **options})


def in_threads(batcher: BatchingReranker, searches) -> list:
    results: list = [None] * len(searches)

    def one(i: int) -> None:
        query, groups = searches[i]
        results[i] = batcher.score_groups(query, groups, deadline=time.monotonic() + 60)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(searches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_it_gives_concurrent_searches_the_scores_of_one_by_one(reranker):
    # A long gather window makes all four searches share one window of passes.
    batcher = engine(reranker, gather_ms=300)
    results = in_threads(batcher, SEARCHES)
    assert max(result.window_requests for result in results) > 1
    for (query, groups), result in zip(SEARCHES, results, strict=True):
        alone, best = reranker.score_groups(query, groups)
        assert result.scores == pytest.approx(alone, abs=1e-5)
        assert result.best == best


def test_it_keeps_passes_within_the_token_budget(reranker):
    batcher = engine(reranker, max_batch_tokens=256, gather_ms=300)
    in_threads(batcher, SEARCHES)
    stats = batcher.stats
    assert stats.passes > 1
    assert stats.padded_tokens <= stats.passes * 256
    assert stats.pairs == sum(len(group) for _, groups in SEARCHES for group in groups)


def test_it_sorts_pairs_by_tokens_so_little_is_padding(reranker):
    batcher = engine(reranker, gather_ms=300)
    in_threads(batcher, SEARCHES)
    assert batcher.stats.padding_share < 0.25


def test_it_turns_work_away_when_the_queue_is_full(reranker):
    # The first search waits in the queue through the gather window; the second does not fit.
    batcher = engine(reranker, max_queued_pairs=3, gather_ms=1000)
    first = threading.Thread(target=in_threads, args=(batcher, SEARCHES[:1]))
    first.start()
    deadline = time.monotonic() + 5
    while batcher.stats.requests == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(Overloaded, match="queue is full"):
        batcher.score_groups(*SEARCHES[1], deadline=time.monotonic() + 60)
    first.join()


def test_it_drops_a_search_whose_caller_has_gone(reranker):
    batcher = engine(reranker, gather_ms=200)
    with pytest.raises(CallerGone):
        batcher.score_groups(*SEARCHES[0], deadline=time.monotonic() + 0.05)
    deadline = time.monotonic() + 5
    while batcher.stats.dropped == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher.stats.dropped == 1
    assert batcher.stats.pairs == 0  # the model never ran for it


def test_it_measures_queue_and_model_time_separately(reranker):
    batcher = engine(reranker, gather_ms=100)
    result = batcher.score_groups(*SEARCHES[0], deadline=time.monotonic() + 60)
    assert result.queue_ms >= 90  # it waited out the gather window before its first pass
    assert result.model_ms > 0


def test_it_batches_concurrent_searches_in_the_real_worker(rerank_worker, tiny_model_dir: Path):
    from django.conf import settings

    from worker.app import app

    sent = [
        app.send_task("worker.tasks.rerank", args=[query, groups, time.time(), "en"], queue=settings.RERANK_QUEUE)
        for query, groups in SEARCHES * 2
    ]
    payloads = [result.get(timeout=120) for result in sent]
    reference = load_model(str(tiny_model_dir), device="cpu", max_length=512, batch_size=8)
    for (query, groups), payload in zip(SEARCHES * 2, payloads, strict=True):
        assert {"scores", "best", "model", "queue_ms", "model_ms", "pairs"} <= set(payload)
        alone, best = reference.score_groups(query, groups)
        assert payload["scores"] == pytest.approx(alone, abs=1e-5)
        assert payload["best"] == best
    assert any(payload["batched_with"] > 0 for payload in payloads)
