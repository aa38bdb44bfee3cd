"""The staff's evaluation page: stored runs with their tables, chart and movers; refused to others."""

from __future__ import annotations

import pytest
from django.test import Client

from evaluation.models import EvaluationRun
from evaluation.runs import evaluation_run_store

pytestmark = pytest.mark.django_db

METRICS = {"mrr@5": 0.5, "recall@3": 0.5, "top1": 0.25, "ndcg@10": 0.4, "recall@k_initial": 0.9}
BETTER = {"mrr@5": 0.75, "recall@3": 0.75, "top1": 0.5, "ndcg@10": 0.6, "recall@k_initial": 0.9}


def stored_run() -> EvaluationRun:
    report = {
        "dataset": "site-judgments",
        "model": "tiny-cross-encoder",
        "k_initial": 50,
        "queries": 3,
        "fulltext": METRICS,
        "reranked": BETTER,
        "languages": {
            "en": {"queries": 2, "fulltext": METRICS, "reranked": BETTER},
            "zh": {"queries": 1, "fulltext": METRICS, "reranked": METRICS},
        },
        "judgments": {"selection": "staff judgments", "judgments": 9, "judges": 2, "stale": [], "stale_kept": False},
        "movers": {
            "helped": [
                {
                    "query_id": "q-1",
                    "query": "<b>python</b> diet",
                    "language": "en",
                    "fulltext": 0.2,
                    "reranked": 0.9,
                    "first_relevant": [4, 1],
                    "top1": [{"id": "7", "title": "Snakes", "grade": 0}, {"id": "9", "title": "Diet", "grade": 1}],
                }
            ],
            "hurt": [],
        },
        "rerank_status": {"ok": 3},
        "per_query": [],
    }
    return evaluation_run_store(report=report, chart_png=b"\x89PNG\r\n\x1a\nnot really a chart")


def test_it_refuses_anonymous_and_non_staff_visitors(client, plain_user):
    run = stored_run()
    for path in ("/evaluation/", f"/evaluation/runs/{run.pk}", f"/evaluation/runs/{run.pk}/chart.png"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), path
    reader = Client()
    reader.force_login(plain_user)
    response = reader.get("/evaluation/")
    assert response.status_code == 302 and "tiny-cross-encoder" not in response.content.decode()


def test_it_shows_staff_the_runs_tables_chart_and_movers(staff_client):
    run = stored_run()
    listing = staff_client.get("/evaluation/").content.decode()
    assert "site-judgments · tiny-cross-encoder" in listing and "+0.200" in listing
    page = staff_client.get(f"/evaluation/runs/{run.pk}")
    html = page.content.decode()
    assert page.status_code == 200
    assert "nDCG@10" in html and "0.400" in html and "0.600" in html and "+50.0%" in html
    assert "en (2 queries)" in html and "zh (1 query)" in html
    assert "&lt;b&gt;python&lt;/b&gt; diet" in html and "<b>python</b>" not in html
    assert f'src="/evaluation/runs/{run.pk}/chart.png"' in html
    assert "script-src 'self'" in page["Content-Security-Policy"]
    chart = staff_client.get(f"/evaluation/runs/{run.pk}/chart.png")
    assert chart["Content-Type"] == "image/png" and chart.content.startswith(b"\x89PNG")
    assert staff_client.get("/evaluation/runs/999999999").status_code == 404


def test_it_reads_the_model_of_a_run_stored_before_the_typed_contract(staff_client):
    # Runs store the served model as JSON (worker.protocol.ModelInfo); older runs lack later fields.
    run = stored_run()
    run.report["model_info"] = {"model": "tiny-cross-encoder", "kind": "cross-encoder", "device": "cpu"}
    run.save()
    html = staff_client.get(f"/evaluation/runs/{run.pk}").content.decode()
    assert "model tiny-cross-encoder (cross-encoder)" in html
