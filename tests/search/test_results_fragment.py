"""The result page's results alone (/search/results), which results as you type swap in."""

import pytest

pytestmark = pytest.mark.django_db


def test_it_gives_the_full_text_order_at_once_without_the_reranker(client, own_queue):
    # No worker serves this test's queue: a search that asked the reranker would wait out its budget.
    response = client.get("/search/results", {"q": "苹果营养价值", "rerank": "0"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    outcome = response.context["outcome"]
    assert outcome.rerank_status == "pending" and outcome.timings["rerank_ms"] is None
    assert outcome.fulltext and not outcome.reranked
    assert 'data-status="pending"' in html and "Reranking the first" in html
    assert "<mark>苹果</mark>" in html
    # The fragment alone: no page around it, no search box (the page keeps its own).
    assert "<html" not in html and 'role="search"' not in html
    # A phone shows the full-text tab while the reranked order is on its way.
    assert 'id="show-fulltext" checked' in html


def test_it_gives_the_reranked_order_as_the_page_does(client, rerank_worker):
    fragment = client.get("/search/results", {"q": "苹果营养价值"})
    page = client.get("/search", {"q": "苹果营养价值"})
    assert fragment.status_code == page.status_code == 200
    assert fragment.context["outcome"].is_reranked
    html = fragment.content.decode()
    assert 'data-status="ok"' in html and "reranked order ready" in html
    # The same orderings as the page's (the reranker's scores are cached for the second search).
    ids = [
        [row.document_id for row in getattr(r.context["outcome"], column)]
        for r in (fragment, page)
        for column in ("fulltext", "reranked")
    ]
    assert ids[0] == ids[2] and ids[1] == ids[3]
    assert "<html" not in html and "<html" in page.content.decode()


def test_it_escapes_the_query_in_the_fragment(client, own_queue):
    response = client.get("/search/results", {"q": '<img src=x onerror="alert(1)">', "rerank": "0"})
    html = response.content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_it_answers_bad_parameters_with_a_fragment(client):
    response = client.get("/search/results", {"q": "python", "k": "many"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "This search cannot run as asked" in html and "k:" in html
    assert "<html" not in html and 'data-status="error"' in html


def test_the_page_loads_the_script_and_works_without_it(client, own_queue):
    response = client.get("/search", {"q": "python"})
    html = response.content.decode()
    assert '<script src="/static/js/live.js" defer></script>' in html
    assert 'id="results-region" data-results-url="/search/results"' in html
    assert 'id="live-status" role="status" aria-live="polite"' in html
    # Without the script the page is what it was: the reranked order asked for and waited on.
    assert response.context["outcome"].rerank_status != "pending"


def test_a_refused_search_comes_as_a_fragment_that_says_when_to_retry(client, own_queue, monkeypatch):
    from search.throttling import SearchPageThrottle

    monkeypatch.setattr(SearchPageThrottle, "THROTTLE_RATES", {"anon_search_page": "1/min"})
    assert client.get("/search/results", {"q": "python", "rerank": "0"}).status_code == 200
    refused = client.get("/search/results", {"q": "python"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    html = refused.content.decode()
    assert "<html" not in html and 'data-status="error"' in html and "Too many requests" in html
