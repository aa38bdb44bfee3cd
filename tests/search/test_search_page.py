"""The search page against the real database and a real rerank worker."""

import pytest

pytestmark = pytest.mark.django_db


def test_it_shows_both_orderings_with_the_worker(client, rerank_worker):
    response = client.get("/search", {"q": "苹果营养价值"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Full-text order" in html and "Reranked order" in html
    outcome = response.context["outcome"]
    assert outcome.is_reranked, outcome.notices
    assert outcome.reranker.kind == "cross-encoder"
    assert len(outcome.reranked) == len(outcome.fulltext) > 0
    assert all(row.rerank_score is not None for row in outcome.reranked)
    assert "<mark>苹果</mark>" in html
    # The reranker in one short line, its details (the "Reranker:" line) behind a disclosure.
    assert '<details class="ranking">' in html and "Reranked by tiny-cross-encoder" in html
    assert "Reranker: <strong>" in html.split('<details class="ranking">')[1].split("</details>")[0]


def test_it_escapes_the_query_on_the_page(client):
    response = client.get("/search", {"q": "<script>alert(1)</script>"})
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_it_shows_a_friendly_page_for_an_empty_query(client):
    response = client.get("/search", {"q": "   "})
    assert response.status_code == 200
    assert "Type something to search for." in response.content.decode()
