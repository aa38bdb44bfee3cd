"""A search always answers: when the budget runs out, the model cannot load or the task raises,
the full-text order stands, with a notice that says why (the API and the result page).

Every fault here happens to an instance the test started itself (its own worker on its own
queue), stopped by its process id. A worker killed mid-rerank and a Redis outage are in
test_worker_killed.py and test_redis_restart.py.
"""

from __future__ import annotations

import pytest

from search import worker_client
from tests.support.session import start_own_worker, wait_for_worker

pytestmark = pytest.mark.faults

QUERY = "苹果营养价值"
# The budget while a test shows that reranking works: a cold worker on a busy CPU is slow.
GENEROUS_SECONDS = 30.0
# Few candidates keep each rerank small.
SEARCH = {"q": QUERY, "k_initial": 3}


@pytest.fixture(autouse=True)
def _no_rerank_cache(settings):
    """Every search here must reach the worker (or fail to): no scores from the rerank cache."""
    settings.RERANK_CACHE_SECONDS = 0


def assert_fallback(body: dict, status: str, *phrases: str) -> None:
    """The API answered with the full-text order only, and a notice saying why."""
    assert body["reranked_applied"] is False
    assert body["rerank_status"] == status
    assert body["reranked"] == []
    assert body["fulltext"], "the full-text order must still be there"
    assert all(row["rerank_score"] is None for row in body["fulltext"])
    assert "Showing the full-text order." in body["notice"]
    for phrase in phrases:
        assert phrase in body["notice"]


def assert_fallback_page(response, *phrases: str) -> None:
    assert response.status_code == 200
    html = response.content.decode()
    assert "Full-text order" in html
    assert "No reranked order for this search; the full-text order stands." in html
    outcome = response.context["outcome"]
    assert not outcome.is_reranked
    assert outcome.fulltext
    for phrase in phrases:
        assert any(phrase in notice for notice in outcome.notices), outcome.notices
    # On the page: one short line saying the order is not reranked; the reason is behind it.
    assert '<details class="ranking warn">' in html
    assert f'<span class="ranking-line">{outcome.rerank_summary}</span>' in html
    assert outcome.rerank_summary.startswith("Not reranked")
    assert outcome.rerank_notices and not outcome.query_notices
    assert '<p class="notice" role="status">' not in html  # nothing above the results repeats it


# --- the budget runs out ------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_names_the_time_budget_when_the_worker_cannot_answer_in_time(client, settings, rerank_worker):
    settings.RERANK_TIMEOUT = 0.001

    api = client.get("/api/v1/search", SEARCH)
    page = client.get("/search", SEARCH)

    assert api.status_code == 200
    assert_fallback(api.json(), "timeout", "did not answer within 0.001 s")
    assert_fallback_page(page, "did not answer within 0.001 s")
    # The worker dropped the expired work and still serves a search with a real budget.
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    assert client.get("/api/v1/search", SEARCH).json()["reranked_applied"] is True


# --- the model cannot be loaded -----------------------------------------------------------------


@pytest.mark.django_db
def test_it_quotes_the_workers_reason_when_the_model_cannot_load(client, settings, own_queue, artifacts_dir, tmp_path):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS  # the answer is immediate; no need to race it
    worker = start_own_worker(own_queue, str(tmp_path / "missing" / "model"), artifacts_dir)
    try:
        status = wait_for_worker(worker)
        assert status.get("ready") is False and "does not exist" in status["problem"], status

        api = client.get("/api/v1/search", SEARCH)
        page = client.get("/search", SEARCH)
        rerank = client.post(
            "/api/v1/rerank", {"query": QUERY, "documents": ["红富士苹果"]}, content_type="application/json"
        )

        assert api.status_code == 200
        assert_fallback(api.json(), "error", "The reranker reported an error", "does not exist")
        assert_fallback_page(page, "does not exist")
        assert rerank.status_code == 503
        assert rerank.json()["status"] == "error"
        assert "does not exist" in rerank.json()["error"]
        assert worker.alive(), worker.log()[-2000:]
    finally:
        worker.stop()


def test_it_turns_a_task_that_raises_into_a_notice(rerank_worker):
    # A group holding a non-text makes the real task raise inside the worker.
    reply = worker_client.rerank(QUERY, [[None]], timeout=10.0)
    assert not reply.ok
    assert reply.status == "error"
    assert reply.notice.startswith("The reranker failed on this query")
    assert worker_client.rerank(QUERY, [["红富士苹果"]], timeout=10.0).ok
