"""The evaluate command: metric code (hand-computed and against ir-measures) and whole runs with real workers."""

from __future__ import annotations

import io
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import ir_measures
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test.utils import override_settings

from common.processes import STOP_GRACE_SECONDS, pid_alive
from documents.models import LIBRARY, Document
from evaluation.runner import (
    DatasetError,
    collection_name,
    dataset_load,
    mean_metrics,
    ndcg,
    query_metrics,
    recall,
    reciprocal_rank,
)
from search.services import search_run
from tests.support.processes import ROOT, WORKER_READY_SECONDS
from tests.support.session import child_env

TINY_CORPUS = [
    {
        "_id": "d-apple-fruit",
        "title": "Apple fruit nutrition",
        "text": "Apples are a fruit rich in fiber and vitamin C.",
    },
    {
        "_id": "d-apple-phone",
        "title": "Apple launches a phone",
        "text": "Apple announced a phone; its logo is a fruit.",
    },
    {"_id": "d-python-snake", "title": "Python snakes", "text": "Pythons are large snakes that squeeze their prey."},
    {
        "_id": "d-python-code",
        "title": "Python programming",
        "text": "Python is a programming language named after snakes.",
    },
    {"_id": "z-apple-fruit", "title": "苹果的营养", "text": "苹果是一种水果，富含维生素和膳食纤维。"},
    {"_id": "z-apple-phone", "title": "苹果公司发布手机", "text": "苹果公司发布了新款手机，售价上涨。"},
]
TINY_QUERIES = [
    {"_id": "q-apple", "text": "apple fruit", "language": "en"},
    {"_id": "q-unjudged", "text": "apple phone", "language": "en"},
    {"_id": "q-python", "text": "python snakes", "language": "en"},
    {"_id": "q-zh", "text": "苹果 水果", "language": "zh"},
    {"_id": "q-nothing", "text": "zebra migration", "language": "en"},
]
TINY_QRELS = [
    ("q-apple", "d-apple-fruit", 2),
    ("q-apple", "d-apple-phone", 0),
    ("q-python", "d-python-snake", 2),
    ("q-python", "d-python-code", 1),
    ("q-zh", "z-apple-fruit", 2),
    ("q-nothing", "d-python-snake", 1),
]


def write_dataset(folder: Path) -> Path:
    """Write the tiny BEIR-style data set into `folder` and return it."""
    (folder / "qrels").mkdir(parents=True)
    lines = lambda rows: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)  # noqa: E731
    (folder / "corpus.jsonl").write_text(lines(TINY_CORPUS), encoding="utf-8")
    (folder / "queries.jsonl").write_text(lines(TINY_QUERIES), encoding="utf-8")
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in TINY_QRELS)
    (folder / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return folder


# --- metrics, by hand ---------------------------------------------------------------------------


def test_it_computes_reciprocal_rank_within_the_depth():
    judged = {"c": 1, "a": 0}
    assert reciprocal_rank(["a", "b", "c"], judged, depth=5) == pytest.approx(1 / 3)
    assert reciprocal_rank(["a", "b", "c"], judged, depth=2) == 0.0
    assert reciprocal_rank([], judged, depth=5) == 0.0


def test_it_computes_recall_over_all_relevant_documents():
    judged = {"a": 2, "d": 1, "b": 0}
    assert recall(["a", "b", "c"], judged, depth=3) == pytest.approx(0.5)
    assert recall(["b", "c", "d", "a"], judged, depth=3) == pytest.approx(0.5)
    assert recall(["b", "c", "d", "a"], judged, depth=4) == 1.0


def test_it_computes_ndcg_with_graded_gains():
    judged = {"a": 2, "b": 1, "x": 0}
    # DCG = 1/log2(2) + 2/log2(3); ideal = 2/log2(2) + 1/log2(3)
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg(["b", "a", "x"], judged, depth=10) == pytest.approx(expected)
    assert expected == pytest.approx(0.8597, abs=1e-4)
    assert ndcg(["a", "b"], judged, depth=10) == pytest.approx(1.0)
    # Only the top `depth` of the ideal ranking counts: a at 1 is perfect at depth 1.
    assert ndcg(["a", "x", "b"], judged, depth=1) == pytest.approx(1.0)


def test_it_scores_top_one_and_averages_over_queries():
    first = query_metrics(["a", "b"], {"a": 1}, k_initial=50)
    second = query_metrics(["b", "a"], {"a": 1}, k_initial=50)
    assert (first["top1"], second["top1"]) == (1.0, 0.0)
    assert (first["mrr@5"], second["mrr@5"]) == (1.0, 0.5)
    averaged = mean_metrics([first, second])
    assert averaged["top1"] == 0.5
    assert averaged["mrr@5"] == 0.75
    assert averaged["recall@k_initial"] == 1.0
    assert set(mean_metrics([]).values()) == {0.0}


# --- metrics, against ir-measures (trec_eval) ---------------------------------------------------


def test_it_agrees_with_ir_measures_on_random_rankings():
    rng = random.Random(20240611)
    qrels, run, ours = [], [], {}
    for q in range(300):
        query_id = f"q{q}"
        pool = [f"d{i}" for i in range(rng.randint(1, 40))]
        judged = {d: rng.choice([0, 0, 1, 2, 3]) for d in rng.sample(pool, rng.randint(1, len(pool)))}
        if not any(judged.values()):
            judged[pool[0]] = 1
        ranking = rng.sample(pool, rng.randint(1, len(pool)))
        qrels += [ir_measures.Qrel(query_id, d, g) for d, g in judged.items()]
        # Strictly falling scores: trec_eval re-sorts by score and would reorder ties.
        run += [ir_measures.ScoredDoc(query_id, d, float(len(ranking) - i)) for i, d in enumerate(ranking)]
        ours[query_id] = query_metrics(ranking, judged, k_initial=20)
    names = {
        ir_measures.RR @ 5: "mrr@5",
        ir_measures.R @ 3: "recall@3",
        ir_measures.P @ 1: "top1",
        ir_measures.nDCG @ 10: "ndcg@10",
        ir_measures.R @ 20: "recall@k_initial",
    }
    checked = 0
    for value in ir_measures.iter_calc(list(names), qrels, run):
        assert ours[value.query_id][names[value.measure]] == pytest.approx(value.value, abs=1e-6), value
        checked += 1
    assert checked == 300 * len(names)


# --- data sets ----------------------------------------------------------------------------------


def test_it_keeps_the_first_judged_queries_in_file_order(tmp_path: Path):
    dataset = dataset_load(directory=write_dataset(tmp_path / "tiny"), max_queries=2)
    assert [q.id for q in dataset.queries] == ["q-apple", "q-python"]  # q-unjudged has no judgment
    assert dataset.judged_query_count == 4
    assert dataset.qrels["q-apple"] == {"d-apple-fruit": 2, "d-apple-phone": 0}


def test_it_names_the_splits_there_are(tmp_path: Path):
    with pytest.raises(DatasetError, match="splits here: test"):
        dataset_load(directory=write_dataset(tmp_path / "tiny"), split="dev")


def test_it_gives_each_corpus_its_own_collection(tmp_path: Path):
    first = dataset_load(directory=write_dataset(tmp_path / "one"))
    (tmp_path / "two").mkdir()
    other = write_dataset(tmp_path / "two" / "one")
    with (other / "corpus.jsonl").open("a") as handle:
        handle.write(json.dumps({"_id": "extra", "title": "Extra", "text": "One more."}) + "\n")
    second = dataset_load(directory=other)
    assert collection_name(first).startswith("eval:one-")
    assert collection_name(first) != collection_name(second) != LIBRARY


# --- the command, end to end, with real worker processes ----------------------------------------


def run_evaluate(*args: str) -> str:
    out = io.StringIO()
    call_command("evaluate", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.worker
@pytest.mark.django_db
def test_it_evaluates_a_tiny_set_with_its_own_worker(tmp_path: Path, tiny_model_dir: Path):
    folder = write_dataset(tmp_path / "tiny")
    library_before = Document.objects.filter(collection=LIBRARY).count()
    output = tmp_path / "out"
    printed = run_evaluate(str(folder), "--model", str(tiny_model_dir), "--languages", "en", "--output", str(output))

    results = json.loads((output / "results.json").read_text())
    assert results["dataset"] == "tiny"
    assert results["model"] == str(tiny_model_dir)
    assert results["model_info"]["kind"] == "cross-encoder"
    assert results["k_initial"] == settings.SEARCH_K_INITIAL
    for ordering in ("fulltext", "reranked"):
        assert set(results[ordering]) == {"mrr@5", "recall@3", "top1", "ndcg@10", "recall@k_initial"}
    per_query = {row["query_id"]: row for row in results["per_query"]}
    assert list(per_query) == ["q-apple", "q-python", "q-zh", "q-nothing"]
    assert set(per_query["q-apple"]["fulltext"]) == {"d-apple-fruit", "d-apple-phone"}
    assert set(per_query["q-python"]["fulltext"]) == {"d-python-snake", "d-python-code"}
    assert "z-apple-fruit" in per_query["q-zh"]["fulltext"]
    assert per_query["q-nothing"]["fulltext"] == per_query["q-nothing"]["reranked"] == []

    # English queries were reranked (a permutation of their candidates); the Chinese one was not
    # (the worker serves "en" only) and counts with its full-text order.
    assert results["rerank_status"] == {"no-candidates": 1, "ok": 2, "skipped": 1}
    assert results["fallbacks"] == 0
    for query_id in ("q-apple", "q-python"):
        assert sorted(per_query[query_id]["reranked"]) == sorted(per_query[query_id]["fulltext"])
    assert per_query["q-zh"]["reranked"] == per_query["q-zh"]["fulltext"]
    assert results["languages"]["zh"]["fulltext"] == results["languages"]["zh"]["reranked"]

    # The reported means are the means of the per-query metrics over these very lists.
    qrels = {}
    for query_id, doc_id, grade in TINY_QRELS:
        qrels.setdefault(query_id, {})[doc_id] = grade
    for ordering in ("fulltext", "reranked"):
        expected = mean_metrics([query_metrics(row[ordering], qrels[q], k_initial=50) for q, row in per_query.items()])
        assert results[ordering] == pytest.approx(expected)
    assert results["fulltext"]["recall@k_initial"] == results["reranked"]["recall@k_initial"] == 0.75

    assert (output / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (output / "report.md").read_text()
    assert "| MRR@5 |" in report and "![both orderings per metric](chart.png)" in report
    assert "### zh (1 queries)" in report
    # Which BM25 ranked the full-text order: the settings of this run.
    assert results["fulltext_parameters"] == {"k1": 0.8, "b": 0.8, "title_weight": 4.0}
    assert "- Full-text order: BM25F, k1 0.8, b 0.8, title weight 4 (SEARCH_BM25_*)" in report
    assert "| MRR@5 |" in printed

    # The corpus went into its own collection, once; the site's library is untouched.
    collection = results["collection"]
    assert Document.objects.filter(collection=collection).count() == len(TINY_CORPUS)
    assert Document.objects.filter(collection=LIBRARY).count() == library_before
    assert results["import"] == {"already": 0, "created": 6, "duplicates": 0, "rejected": 0}


@pytest.mark.worker
@pytest.mark.django_db
def test_it_uses_the_running_worker_without_model(tmp_path: Path, rerank_worker):
    folder = write_dataset(tmp_path / "tiny")
    run_evaluate(str(folder), "--max-queries", "1")  # imports the corpus
    output = tmp_path / "out"
    run_evaluate(str(folder), "--k-initial", "1", "--output", str(output), "--per-query-depth", "1")
    results = json.loads((output / "results.json").read_text())
    assert results["import"]["already"] == len(TINY_CORPUS)
    assert results["import"]["created"] == 0
    assert results["model_info"]["kind"] == "cross-encoder"
    assert results["k_initial"] == 1
    # The session worker serves every language: the Chinese query is reranked too.
    assert results["rerank_status"] == {"no-candidates": 1, "ok": 3}
    assert all(len(row["fulltext"]) <= 1 for row in results["per_query"])
    outcome = search_run(query="python snakes", k=1, k_initial=1, collection=results["collection"])
    top = Document.objects.get(pk=outcome.fulltext[0].document_id).external_id
    assert results["per_query"][1]["fulltext"] == [top]


@pytest.mark.django_db
def test_it_refuses_to_run_without_a_worker(tmp_path: Path):
    folder = write_dataset(tmp_path / "tiny")
    with (
        override_settings(RERANK_QUEUE=f"rerank-nobody-{uuid.uuid4().hex[:8]}"),
        pytest.raises(CommandError, match="no rerank worker serves queue"),
    ):
        run_evaluate(str(folder))


def test_it_wants_a_model_for_languages(tmp_path: Path):
    with pytest.raises(CommandError, match="give --model too"):
        run_evaluate(str(tmp_path), "--languages", "en,zh")


@pytest.mark.worker
def test_a_terminated_evaluation_stops_its_private_worker(
    tmp_path: Path, tiny_model_dir: Path, django_db_setup, django_db_blocker
):
    folder = write_dataset(tmp_path / "tiny")
    log_path = tmp_path / "evaluate.log"
    command = [sys.executable, "manage.py", "evaluate", str(folder), "--model", str(tiny_model_dir)]
    command += ["--output", str(tmp_path / "out")]
    with log_path.open("ab") as log:
        evaluation = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    worker_pid = None
    try:
        started = None
        give_up = time.monotonic() + WORKER_READY_SECONDS
        while started is None and time.monotonic() < give_up and evaluation.poll() is None:
            started = re.search(r"started a rerank worker \(pid (\d+)", log_path.read_text(errors="replace"))
            time.sleep(0.05)
        assert started, log_path.read_text(errors="replace")[-3000:]
        worker_pid = int(started.group(1))
        assert pid_alive(worker_pid)

        evaluation.send_signal(signal.SIGTERM)
        assert evaluation.wait(timeout=STOP_GRACE_SECONDS * 6) == 128 + signal.SIGTERM
        give_up = time.monotonic() + STOP_GRACE_SECONDS * 3
        while pid_alive(worker_pid) and time.monotonic() < give_up:
            time.sleep(0.1)
        assert not pid_alive(worker_pid), "the private worker outlived its evaluation"
    finally:
        if evaluation.poll() is None:
            evaluation.kill()
            evaluation.wait()
        if worker_pid is not None and pid_alive(worker_pid):
            os.killpg(worker_pid, signal.SIGKILL)  # the worker this test's evaluation started, leaked
        # The evaluation, a process of its own, committed the corpus it imported: remove it, so
        # that a test after this one (in any order) finds the collection as new.
        with django_db_blocker.unblock():
            Document.objects.filter(collection=collection_name(dataset_load(directory=folder))).delete()
