"""One concise log line per search (web), per rerank API call, and per rerank (worker); no texts,
and a model-hub problem explained once at the worker's start, not again with every rerank."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from search import worker_client
from search.services import search_run
from tests.support.processes import start_worker
from tests.support.session import child_env, wait_for_worker

GENEROUS_SECONDS = 30.0
# A budget no worker meets, for the fallback line (no worker serves the test's own queue).
NO_WORKER_SECONDS = 0.5
QUERY = "python snake diet"
# Longest line a rerank may write: sizes, timings and a model path, never texts or replies.
MAX_LINE_CHARS = 400


def records(caplog, prefix: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage().startswith(prefix)]


@pytest.mark.django_db
def test_it_logs_one_line_per_search_without_the_query(caplog, rerank_worker, settings, tiny_model_dir):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    caplog.set_level(logging.DEBUG, logger="search")

    outcome = search_run(query=QUERY, k=3)

    assert outcome.is_reranked
    (line,) = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert line.startswith(f"search: query_chars={len(QUERY)} candidates={outcome.candidate_count} page=1 lang=all ")
    assert " status=ok " in line and f"model={tiny_model_dir} kind=cross-encoder" in line
    assert "python" not in line and "snake" not in line
    assert not any(row.title in line for row in outcome.fulltext)


@pytest.mark.django_db
def test_it_logs_a_fallback_once_with_its_status(caplog, own_queue, settings):
    settings.RERANK_TIMEOUT = NO_WORKER_SECONDS
    caplog.set_level(logging.DEBUG, logger="search")

    outcome = search_run(query=QUERY, k=3)

    assert outcome.rerank_status == "timeout"
    lines = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert len(lines) == 1 and lines[0].startswith("search: ")
    assert " status=timeout " in lines[0] and "model=- kind=-" in lines[0]


@pytest.mark.django_db
def test_it_logs_one_line_per_rerank_api_call(client, caplog, rerank_worker, settings):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    caplog.set_level(logging.INFO, logger="search")
    documents = ["Pythons swallow rodents whole.", "Apples are fruit."]

    ok = client.post("/api/v1/rerank", {"query": QUERY, "documents": documents}, content_type="application/json")
    too_many = client.post("/api/tei/rerank", {"query": QUERY, "texts": ["x"] * 201}, content_type="application/json")

    assert (ok.status_code, too_many.status_code) == (200, 413)
    lines = [record.getMessage() for record in records(caplog, "rerank api: ")]
    assert len(lines) == 2
    assert lines[0].startswith(f"rerank api: query_chars={len(QUERY)} documents=2 chars=47 status=ok ")
    assert lines[1].startswith(f"rerank api: query_chars={len(QUERY)} documents=201 chars=201 status=too_large ")
    assert not any("Pythons" in line or "snake" in line for line in lines)


@pytest.mark.django_db
def test_it_explains_a_missing_model_once_and_logs_one_short_line_per_rerank(
    own_queue,
    artifacts_dir: Path,
    tmp_path: Path,
    settings,
):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    missing = str(tmp_path / "no-such-model")
    log_path = artifacts_dir / f"worker-{own_queue}.log"
    # The hub model is missing; the worker serves the packaged fallback (English only).
    worker = start_worker(child_env(), log_path, queue=own_queue, model=missing)
    try:
        status = wait_for_worker(worker)
        assert status.get("ready") and status["model"]["fallback_reason"], status
        for query in ("apple nutrition", "python snake diet", "苹果营养"):
            worker_client.rerank(query, [["Apples are fruit."], ["Pythons are snakes."]], language=None)
        log = worker.log()
    finally:
        worker.stop()

    lines = [line for line in log.splitlines() if "rerank: status=" in line]
    assert len(lines) == 3, log[-3000:]
    assert all(" status=ok query_chars=" in line and "groups=2 pairs=2" in line for line in lines)
    assert all(len(line) <= MAX_LINE_CHARS for line in lines), max(lines, key=len)
    assert log.count("does not exist") == 1, "the problem is explained once, at the start"
    assert "succeeded in" not in log  # Celery's line with the whole reply
    assert not any(word in log for word in ("Apples are fruit", "Pythons are snakes", "apple nutrition"))
