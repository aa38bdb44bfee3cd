"""Server-rendered pages: the search page with both orderings, and a document page."""

from __future__ import annotations

import math
import time

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from documents.models import LIBRARY, Document
from search.api import SearchAnonThrottle
from search.highlight import highlight, query_terms
from search.services import SearchUnavailable, search_run


def _int_param(request: HttpRequest, name: str) -> int | None:
    try:
        return int(request.GET.get(name, ""))
    except ValueError:
        return None


class SearchPageThrottle(SearchAnonThrottle):
    """Anonymous searches on the page (rate: SEARCH_PAGE_ANON_THROTTLE); fails open like the API's."""

    scope = "anon_search_page"


@require_GET
def search_page(request: HttpRequest) -> HttpResponse:
    """Render the search box and, for a query, the full-text and reranked columns."""
    raw = request.GET.get("q", "")
    throttle = SearchPageThrottle()
    if raw.strip() and not throttle.allow_request(request, None):
        wait = max(1, math.ceil(throttle.wait() or 1))
        response = render(request, "search/throttled.html", {"query": raw, "wait": wait}, status=429)
        response["Retry-After"] = str(wait)
        return response
    try:
        outcome = search_run(query=raw, k=_int_param(request, "k"), k_initial=_int_param(request, "k_initial"))
    except SearchUnavailable:
        return render(request, "search/unavailable.html", {"query": raw}, status=503)
    context = {
        "query": outcome.query,
        "outcome": outcome,
        "submitted": "q" in request.GET,
    }
    started = time.perf_counter()
    response = render(request, "search/results.html", context)
    response["Server-Timing"] = _server_timing(
        outcome.timings, status=outcome.rerank_status, render_ms=(time.perf_counter() - started) * 1000
    )
    return response


def _server_timing(timings: dict, *, status: str, render_ms: float) -> str:
    """Return a Server-Timing header (browser dev tools and bench/end_to_end.py read it)."""
    parts = [
        f"{name.removesuffix('_ms')};dur={value:.2f}"
        for name, value in timings.items()
        if name.endswith("_ms") and value is not None
    ]
    cached = timings.get("rerank_cached") or 0
    return ", ".join([*parts, f"render;dur={render_ms:.2f}", f'reranking;desc="{status}, {cached} cached"'])


@require_GET
def document_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Render one document, with the query's terms highlighted when one is given."""
    try:
        document = get_object_or_404(Document, pk=pk, collection=LIBRARY)
    except DatabaseError:
        return render(request, "search/unavailable.html", {"query": ""}, status=503)
    query = request.GET.get("q", "")[:500]
    terms = query_terms(query)
    paragraphs = [highlight(p, terms) for p in document.body.split("\n\n") if p.strip()]
    context = {"document": document, "paragraphs": paragraphs, "query": query, "chunk_count": document.chunks.count()}
    return render(request, "search/document.html", context)


def healthz(request: HttpRequest) -> HttpResponse:
    """Return 200 when the database answers (used by docker-compose and load balancers)."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")
