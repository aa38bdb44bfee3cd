"""Storing a finished evaluation: its figures and chart go into the database for the staff's page."""

from __future__ import annotations

import tempfile
from pathlib import Path

from evaluation.models import EvaluationRun, RunSource
from evaluation.reports import chart_write


def chart_png(report: dict) -> bytes:
    """Return the report's chart as PNG bytes (CPU: matplotlib draws it into a temporary file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chart.png"
        chart_write(report, path)
        return path.read_bytes()


def per_query_figures(report: dict) -> list[dict]:
    """Return each query's metrics of both orderings, without its rankings (those can be long)."""
    return [
        {key: row[key] for key in ("query_id", "query", "language", "rerank_status", "metrics") if key in row}
        for row in report.get("per_query", [])
    ]


def evaluation_run_store(*, report: dict, name: str | None = None, chart_png: bytes = b"") -> EvaluationRun:
    """Return the stored run of a finished `evaluate` report (SQL: one insert)."""
    source = RunSource.JUDGMENTS if report.get("judgments") is not None else RunSource.DATASET
    model = report.get("model", "")
    summary = {key: value for key, value in report.items() if key != "per_query"}
    return EvaluationRun.objects.create(
        name=(name or f"{report.get('dataset', 'run')} · {model}")[:200],
        source=source,
        model=model[:300],
        queries=report.get("queries", 0),
        metrics={"fulltext": report.get("fulltext", {}), "reranked": report.get("reranked", {})},
        languages=report.get("languages", {}),
        per_query=per_query_figures(report),
        report=summary,
        chart_png=chart_png,
    )
