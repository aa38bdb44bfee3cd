"""The model raises on some input: the failed pass is halved and retried once, only the search
whose texts the model cannot take gets an error, and the worker goes on serving.

The failure is real: a copy of the tiny CrossEncoder whose position table holds 64 positions while
its tokenizer (and RERANKER_MAX_LENGTH) allow 512, so any pair longer than 64 tokens makes the
forward pass raise, the way an out-of-memory pass raises on a GPU.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest

from search import worker_client
from tests.support.processes import start_worker
from tests.support.session import MODELS, child_env, wait_for_worker
from worker.app import app
from worker.batching import BatchingReranker, ModelFailed
from worker.reranker import load_model

pytestmark = pytest.mark.faults

# Positions the broken copy keeps; the tokenizer still allows 512 tokens.
BROKEN_POSITIONS = 64
QUERY = "apple nutrition"
SHORT = [["Apples have fibre."], ["Pears are sweet."]]
LONG = [["Apples contain vitamin C and dietary fibre. " * 20], ["A phone launch event with new models. " * 20]]
# The worker's batching thread waits this long for searches sent together, so both share a pass.
GATHER_MS = "1500"
GENEROUS_SECONDS = 60.0


@pytest.fixture(scope="session")
def broken_model_dir(tiny_model_dir: Path) -> Path:
    """Return a copy of the tiny CrossEncoder that raises on inputs over 64 tokens (built once)."""
    from safetensors.torch import load_file, save_file

    target = MODELS / f"tiny-cross-encoder-{BROKEN_POSITIONS}-positions"
    if (target / "model.safetensors").exists():
        return target
    partial = target.with_name(target.name + f".partial-{uuid.uuid4().hex[:6]}")
    shutil.copytree(tiny_model_dir, partial)
    config = json.loads((partial / "config.json").read_text())
    config["max_position_embeddings"] = BROKEN_POSITIONS
    (partial / "config.json").write_text(json.dumps(config, indent=2))
    weights = load_file(partial / "model.safetensors")
    for name in weights:
        if name.endswith("position_embeddings.weight"):
            weights[name] = weights[name][:BROKEN_POSITIONS].clone()
    save_file(weights, partial / "model.safetensors", metadata={"format": "pt"})
    try:
        partial.rename(target)
    except OSError:  # a concurrent run built it first
        shutil.rmtree(partial, ignore_errors=True)
    return target


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(str(tiny_model_dir), device="cpu", max_length=512, batch_size=8)


def test_it_halves_a_failed_pass_and_fails_only_the_search_it_cannot_take(broken_model_dir: Path, tiny):
    broken = load_model(str(broken_model_dir), device="cpu", max_length=512, batch_size=8)
    # A long gather window puts both searches in one window, hence in one forward pass.
    batcher = BatchingReranker(broken, max_batch_tokens=8192, max_batch_pairs=32, max_queued_pairs=1000, gather_ms=500)
    outcomes: dict[str, object] = {}

    def run(name: str, groups: list[list[str]]) -> None:
        try:
            outcomes[name] = batcher.score_groups(QUERY, groups, deadline=time.monotonic() + GENEROUS_SECONDS)
        except ModelFailed as error:
            outcomes[name] = error

    threads = [threading.Thread(target=run, args=args) for args in (("short", SHORT), ("long", LONG))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert isinstance(outcomes["long"], ModelFailed), outcomes["long"]
    assert "the model failed on this search's texts (RuntimeError" in str(outcomes["long"])
    assert outcomes["short"].window_requests == 2, "both searches must have shared one pass"
    assert outcomes["short"].scores == pytest.approx(tiny.score_groups(QUERY, SHORT)[0], abs=1e-5)
    assert (batcher.stats.halved, batcher.stats.failed) == (1, 1)
    # The batching thread is still alive and serves the next search.
    after = batcher.score_groups(QUERY, SHORT, deadline=time.monotonic() + GENEROUS_SECONDS)
    assert after.scores == pytest.approx(outcomes["short"].scores, abs=1e-6)


@pytest.fixture
def broken_worker(broken_model_dir: Path, artifacts_dir: Path, settings):
    """A real worker process serving the broken model on a queue of the test's own."""
    settings.RERANK_QUEUE = f"rerank-broken-{uuid.uuid4().hex[:8]}"
    settings.RERANK_CACHE_SECONDS = 0
    worker = start_worker(
        child_env(),
        artifacts_dir / f"worker-{settings.RERANK_QUEUE}.log",
        queue=settings.RERANK_QUEUE,
        model=str(broken_model_dir),
        extra_env={"RERANKER_FALLBACK_MODEL": "", "RERANKER_GATHER_MS": GATHER_MS},
    )
    status = wait_for_worker(worker)
    assert status.get("ready"), status
    yield worker
    worker.stop()
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.RERANK_QUEUE)


@pytest.mark.django_db
def test_it_answers_the_failed_search_with_an_error_and_serves_the_next(broken_worker, client, settings, tiny):
    client.defaults["REMOTE_ADDR"] = f"10.9.{uuid.uuid4().bytes[0]}.{uuid.uuid4().bytes[1]}"
    queue = settings.RERANK_QUEUE
    both = [
        app.send_task("worker.tasks.rerank", args=[QUERY, groups, time.time(), "en"], queue=queue)
        for groups in (LONG, SHORT)
    ]
    failed, scored = (result.get(timeout=GENEROUS_SECONDS) for result in both)

    assert failed["status"] == "error" and failed["scores"] == []
    assert "the model failed on this search's texts" in failed["reason"]
    assert scored["scores"] == pytest.approx(tiny.score_groups(QUERY, SHORT)[0], abs=1e-5)
    assert scored["batched_with"] == 1, "the two searches must have shared a pass"
    assert "retrying it in two halves" in broken_worker.log()

    # Through the site: the sample library's chunks are all longer than 64 tokens.
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    api = client.get("/api/v1/search", {"q": "python snake diet", "k_initial": 3}).json()
    rerank = client.post("/api/v1/rerank", {"query": QUERY, "documents": [LONG[0][0]]}, content_type="application/json")
    assert api["rerank_status"] == "error" and api["reranked_applied"] is False
    assert "The reranker reported an error: the model failed on this search's texts" in api["notice"]
    assert api["fulltext"], "the full-text order still answers"
    assert rerank.status_code == 503 and rerank.json()["status"] == "error"

    # The worker stayed up: the next search it can take is scored.
    reply = worker_client.rerank(QUERY, SHORT, timeout=GENEROUS_SECONDS)
    assert reply.ok, reply.notice
    assert broken_worker.alive()
