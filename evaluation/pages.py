"""What the evaluation app's pages show: refusals, and the tables of stored runs (no I/O but the given rows)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from evaluation import judgments
from evaluation.models import EvaluationRun
from worker.protocol import ModelInfo

# The metrics of a run's tables, in order, with their labels (evaluation.runner reports these).
METRIC_ROWS = [
    ("mrr@5", "MRR@5"),
    ("recall@3", "Recall@3"),
    ("top1", "Top-1 accuracy"),
    ("ndcg@10", "nDCG@10"),
    ("recall@k_initial", "Recall@k_initial (ceiling)"),
]
# The metric the runs list compares runs by, and the reports rank movers by.
HEADLINE_METRIC = "ndcg@10"
# Runs on the list page: enough to see a trend; older runs stay in the database and the admin.
RUNS_LISTED = 100


def judging_context(*, request: HttpRequest, query: str, document_ids: list[int]) -> dict:
    """Return the result page's judging state: whether to show the controls, and what was judged."""
    if not query or not judgments.judging_allowed(request):
        return {"allowed": False, "grades": {}}
    grades = judgments.judgments_of_visitor(request=request, query=query, document_ids=document_ids)
    return {"allowed": True, "grades": grades}


def refused(request: HttpRequest, query: str, message: str, status: int) -> HttpResponse:
    """Return the page that says why a judgment was not recorded."""
    return render(request, "evaluation/refused.html", {"query": query, "message": message}, status=status)


def metric_table(figures: dict, k_initial: int) -> list[dict]:
    """Return one row per metric: full-text, reranked, and the change (absolute and relative)."""
    rows = []
    for name, label in METRIC_ROWS:
        before = (figures.get("fulltext") or {}).get(name)
        after = (figures.get("reranked") or {}).get(name)
        if before is None or after is None:
            continue
        delta = after - before
        rows.append(
            {
                "label": label.replace("k_initial", str(k_initial)),
                "fulltext": before,
                "reranked": after,
                "delta": delta,
                "relative": delta / before * 100 if before else None,
                "direction": "up" if delta > 0 else "down" if delta < 0 else "same",
            }
        )
    return rows


def run_rows(runs: list[EvaluationRun]) -> list[dict]:
    """Return the runs list's rows: each run's headline metric before and after reranking."""
    rows = []
    for run in runs:
        before = (run.metrics.get("fulltext") or {}).get(HEADLINE_METRIC)
        after = (run.metrics.get("reranked") or {}).get(HEADLINE_METRIC)
        delta = after - before if before is not None and after is not None else None
        rows.append(
            {
                "run": run,
                "fulltext": before,
                "reranked": after,
                "delta": delta,
                "direction": "up" if delta and delta > 0 else "down" if delta and delta < 0 else "same",
                "languages": ", ".join(run.languages),
            }
        )
    return rows


def run_context(run: EvaluationRun) -> dict:
    """Return the run page's context: tables for all queries and each language, movers, staleness."""
    k_initial = run.report.get("k_initial", 0)
    movers = run.report.get("movers") or {}
    return {
        "run": run,
        "overall": metric_table(run.metrics, k_initial),
        "languages": [
            {"code": code, "queries": figures.get("queries", 0), "rows": metric_table(figures, k_initial)}
            for code, figures in sorted(run.languages.items())
        ],
        "helped": movers.get("helped", []),
        "hurt": movers.get("hurt", []),
        "judgments": run.report.get("judgments"),
        "rerank_status": run.report.get("rerank_status", {}),
        "model_info": ModelInfo.from_dict(run.report.get("model_info")),
        "command": (run.report.get("run") or {}).get("command", ""),
        "has_chart": run.has_chart,
    }
