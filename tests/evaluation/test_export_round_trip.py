"""export_judgments writes a BEIR folder that `evaluate DIR` reads back to the figures of `evaluate --judgments`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from evaluation.models import EvaluationRun

pytestmark = [pytest.mark.django_db, pytest.mark.worker]

# Queries in both languages; each judged on its first full-text results, alternately.
QUERIES = ["python snake diet", "mercury toxicity", "苹果营养价值", "jaguar speed in the wild"]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_it_round_trips_to_the_same_metrics(staff_client, tmp_path: Path, rerank_worker):
    for query in QUERIES:
        shown = staff_client.get("/search", {"q": query}).context["outcome"].fulltext[:5]
        for position, row in enumerate(shown):
            relevant = "1" if position in (1, 3) else "0"  # relevant below the top: reranking can move it
            staff_client.post("/judgments", {"query": query, "document_id": row.document_id, "relevant": relevant})
    judged_dir, exported, dataset_dir = tmp_path / "judged", tmp_path / "beir", tmp_path / "dataset"
    run("evaluate", "--judgments", "--output", str(judged_dir))
    printed = run("export_judgments", str(exported))
    assert f"wrote {len(QUERIES)} queries" in printed
    assert {p.name for p in exported.iterdir()} == {"queries.jsonl", "qrels", "corpus.jsonl"}
    run("evaluate", str(exported), "--output", str(dataset_dir))

    judged = json.loads((judged_dir / "results.json").read_text())
    dataset = json.loads((dataset_dir / "results.json").read_text())
    assert judged["queries"] == dataset["queries"] == len(QUERIES)
    assert judged["rerank_status"] == dataset["rerank_status"] == {"ok": len(QUERIES)}
    for ordering in ("fulltext", "reranked"):
        assert judged[ordering] == pytest.approx(dataset[ordering], abs=1e-9), ordering
    assert judged["languages"].keys() == dataset["languages"].keys() == {"en", "zh"}
    for language in judged["languages"]:
        for ordering in ("fulltext", "reranked"):
            assert judged["languages"][language][ordering] == pytest.approx(
                dataset["languages"][language][ordering], abs=1e-9
            )
    # The same rankings query by query: the library's ids are the exported corpus ids.
    assert [r["reranked"] for r in judged["per_query"]] == [r["reranked"] for r in dataset["per_query"]]
    sources = list(EvaluationRun.objects.order_by("id").values_list("source", flat=True))
    assert sources == ["judgments", "dataset"]
