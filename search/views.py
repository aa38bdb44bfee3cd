"""Server-rendered pages: the search page with both orderings, and a document page."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from documents.markdown import render_markdown
from documents.models import LIBRARY, Document
from search.api import WHOLE_NUMBER, SearchInputSerializer, facets_json
from search.highlight import count_matches, highlight, query_terms
from search.services import SearchUnavailable, search_run
from search.throttling import ClientRateThrottle, DocumentPageThrottle, SearchPageThrottle
from worker import protocol

# The parameters of a result page, which its links and a document's "back to results" keep.
RESULT_PARAMETERS = ("q", "page", "lang", "source", "added", "k", "k_initial")
# The language filter's choices, as the page shows them.
LANGUAGE_CHOICES = [("all", "All"), ("zh", "中文"), ("en", "English")]
# The date filter's choices, as the page shows them.
ADDED_LABELS = [
    ("any", "Any time"),
    ("day", "Past day"),
    ("week", "Past week"),
    ("month", "Past month"),
    ("year", "Past year"),
]
# Page links the pager shows around the current page (and the first and last always).
PAGER_WINDOW = 2
# Characters of a document shown on one page of the document page: enough to read on, and the
# most one request highlights (a 5 MB body is 250 pages, never one 5 MB page).
DOCUMENT_PAGE_CHARS = 20_000
# A page ends at a paragraph (or line, or space) in its last half when there is one.
PAGE_BREAK_SEARCH = DOCUMENT_PAGE_CHARS // 2
# The document page's query is cut like a search's.
DOCUMENT_QUERY_CHARS = 500


def throttled_page(
    request: HttpRequest, throttle: ClientRateThrottle, query: str, *, fragment: bool = False
) -> HttpResponse | None:
    """Return the 429 page when `throttle` refuses the request, else None (Redis: 1-2 calls)."""
    if throttle.allow_request(request, None):
        return None
    wait = throttle.retry_after()
    template = _error_template("search/throttled.html", fragment)
    response = render(request, template, {"query": query, "wait": wait, "throttled": True}, status=429)
    response["Retry-After"] = str(wait)
    return response


def _bad_request(request: HttpRequest, query: str, errors: dict, *, fragment: bool = False) -> HttpResponse:
    problems = [f"{name}: {' '.join(str(m) for m in messages)}" for name, messages in errors.items()]
    template = _error_template("search/bad_request.html", fragment)
    return render(request, template, {"query": query, "problems": problems}, status=400)


@require_GET
def search_page(request: HttpRequest) -> HttpResponse:
    """Render the search box and, for a query, the full-text and reranked columns."""
    return _search(request, template="search/results.html", rerank=True)


@require_GET
def results_fragment(request: HttpRequest) -> HttpResponse:
    """Render the result page's results alone (no box, no header), for results as you type.

    It takes the result page's parameters; `rerank=0` stops before the reranker, so the full-text
    order comes at once (static/js/live.js asks again without it for the reranked order). Errors
    come as a fragment too, with the page's status code.
    """
    rerank = request.GET.get("rerank") != "0"
    response = _search(request, template="search/_results_region.html", rerank=rerank, fragment=True)
    response["Cache-Control"] = "no-store"
    return response


def _search(request: HttpRequest, *, template: str, rerank: bool, fragment: bool = False) -> HttpResponse:
    """Run the search that the request's parameters ask for and render it with `template`."""
    raw = request.GET.get("q", "")
    # The counts are checked as the API checks them; the query is not: the page cleans what the
    # API refuses (NUL and other control characters) and may be opened without one.
    given = request.GET.copy()
    given["q"] = ""
    params = SearchInputSerializer(data=given)
    if not params.is_valid():
        return _bad_request(request, raw, params.errors, fragment=fragment)
    if raw.strip() and (refused := throttled_page(request, SearchPageThrottle(), raw, fragment=fragment)):
        return refused
    data = params.validated_data
    try:
        outcome = search_run(
            query=raw,
            k=data.get("k"),
            k_initial=data.get("k_initial"),
            page=data.get("page"),
            language=data["lang"],
            source=data.get("source") or None,
            added=data["added"],
            lane=protocol.PAGE,
            rerank=rerank,
        )
    except SearchUnavailable:
        return render(request, _error_template("search/unavailable.html", fragment), {"query": raw}, status=503)
    context = {
        "query": outcome.query,
        "outcome": outcome,
        "submitted": "q" in request.GET,
        "state": _result_state(request, outcome),
    }
    started = time.perf_counter()
    response = render(request, template, context)
    response["Server-Timing"] = _server_timing(
        outcome.timings, status=outcome.rerank_status, render_ms=(time.perf_counter() - started) * 1000
    )
    return response


def _error_template(template: str, fragment: bool) -> str:
    """Return the error page `template`, or its message alone (search/_error_fragment.html)."""
    return "search/_error_fragment.html" if fragment else template


def _result_state(request: HttpRequest, outcome) -> dict:
    """Return the links of a result page that keep its query and filters: pages, facets, back."""
    kept = {name: request.GET[name] for name in ("k", "k_initial") if request.GET.get(name)}
    base = {"q": outcome.query, **kept}
    language = outcome.language_filter
    current = {"lang": language, "source": outcome.source, "added": outcome.added or "any", "page": outcome.page}

    def link(**changes: object) -> str:
        params = {**base, **current, **changes}
        return "?" + urlencode(
            {key: value for key, value in params.items() if value not in ("all", "any", 1, None, "")}
        )

    facets = facets_json(outcome.facets)
    counts = {item["value"]: item["count"] for item in facets["language"]}
    added_counts = {item["value"]: item["count"] for item in facets["added"]}
    sources = [
        {"value": item["value"], "count": item["count"], "url": link(source=item["value"], page=1)}
        for item in facets["source"]
        if item["value"] != outcome.source
    ]
    return {
        "pages": _pager(outcome.page, outcome.pages, link),
        "previous": link(page=outcome.page - 1) if outcome.page > 1 else None,
        "next": link(page=outcome.page + 1) if outcome.page < outcome.pages else None,
        "languages": [
            {
                "code": code,
                "label": label,
                "count": counts.get(code, 0),
                "url": link(lang=code, page=1),
                "current": code == language,
            }
            for code, label in LANGUAGE_CHOICES
        ],
        "added": [
            {
                "code": code,
                "label": label,
                "count": added_counts.get(code, 0),
                "url": link(added=code, page=1),
                "current": code == (outcome.added or "any"),
            }
            for code, label in ADDED_LABELS
        ],
        "sources": sources,
        "clear_source": link(source=None, page=1) if outcome.source else None,
        "about": "" if outcome.facets.exact else "~",  # an estimate (the summary says so)
        "suggestion": link(q=outcome.suggestion, page=1) if outcome.suggestion else None,
        # What a document page's "back to results" link returns to (search.views.document_page).
        "back": link(),
    }


def _pager(page: int, pages: int, link) -> list[dict]:
    """Return the pager's items: the first and last pages, those near `page`, and gaps between."""
    shown = sorted({1, pages, *range(max(1, page - PAGER_WINDOW), min(pages, page + PAGER_WINDOW) + 1)})
    items: list[dict] = []
    for number in shown:
        if items and number - items[-1]["number"] > 1:
            items.append({"number": None, "gap": True})
        items.append({"number": number, "url": link(page=number), "current": number == page})
    return items


def _server_timing(timings: dict, *, status: str, render_ms: float) -> str:
    """Return a Server-Timing header (browser dev tools and bench/end_to_end.py read it)."""
    parts = [
        f"{name.removesuffix('_ms')};dur={value:.2f}"
        for name, value in timings.items()
        if name.endswith("_ms") and value is not None
    ]
    cached = timings.get("rerank_cached") or 0
    return ", ".join([*parts, f"render;dur={render_ms:.2f}", f'reranking;desc="{status}, {cached} cached"'])


@dataclass
class DocumentPage:
    number: int  # 1-based
    count: int
    start: int
    end: int
    # With a query and no page asked for: the page of the first match, if one was found in budget.
    first_match_page: int | None = None
    pages_searched: int = 0  # pages looked through for the first match
    match_search_stopped: bool = False  # the scan budget ran out before a match was found

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.count else None


def page_spans(body: str) -> list[tuple[int, int]]:
    """Return the (start, end) of each page of `body`: at most DOCUMENT_PAGE_CHARS each, cut at
    a paragraph, else a line, else a space in the page's second half (C-speed finds only)."""
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(body):
        end = start + DOCUMENT_PAGE_CHARS
        if end < len(body):
            for separator in ("\n\n", "\n", " "):
                cut = body.rfind(separator, start + PAGE_BREAK_SEARCH, end)
                if cut != -1:
                    end = cut + len(separator)
                    break
        end = min(end, len(body))
        spans.append((start, end))
        start = end
    return spans or [(0, 0)]


def _page_number(raw: str | None) -> int | None:
    if not raw:
        return None  # no page asked for (an empty `page=` included)
    if not WHOLE_NUMBER.fullmatch(raw) or int(raw) < 1:
        raise Http404("Invalid page.")
    return int(raw)


@require_GET
def document_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Render one page of one document, the query's terms highlighted on it.

    With a query and no page asked for, the page shown is the first with a match (looked for
    within the query's scan budget). The work is bounded by one page, whatever the document's size.
    """
    query = request.GET.get("q", "")[:DOCUMENT_QUERY_CHARS]
    if refused := throttled_page(request, DocumentPageThrottle(), query):
        return refused
    asked = _page_number(request.GET.get("page"))
    try:
        # The segmented text and the vector can be as large as the body, and are not shown.
        shown = Document.objects.defer("title_search", "body_search", "search_vector")
        document = shown.filter(pk=pk, collection=LIBRARY).first()
        chunk_count = document.chunks.count() if document is not None else 0
    except DatabaseError:
        return render(request, "search/unavailable.html", {"query": ""}, status=503)
    if document is None:
        raise Http404("No such document.")
    # A Markdown document is paged, searched and shown in its Markdown, rendered (documents.markdown).
    source = document.markdown or document.body
    spans = page_spans(source)
    if asked is not None and asked > len(spans):
        raise Http404("Invalid page.")
    terms = query_terms(query)
    page = DocumentPage(number=asked or 1, count=len(spans), start=0, end=0)
    if asked is None and terms and len(spans) > 1:
        _seek_first_match(page, source, spans, terms)
    page.start, page.end = spans[page.number - 1]
    text = source[page.start : page.end]
    rendered = None
    if document.markdown:
        # Every piece of text goes through highlight(), which escapes it; markdown-it-py escapes
        # the rest (raw HTML is off) and drops unsafe link targets.
        rendered = mark_safe(  # noqa: S308
            render_markdown(text, lambda piece: highlight(piece, terms), title=document.title)
        )
        paragraphs = []
    else:
        paragraphs = [highlight(p, terms) for p in text.split("\n\n") if p.strip()]
    context = {
        "document": document,
        "paragraphs": paragraphs,
        "rendered": rendered,
        "query": query,
        "chunk_count": chunk_count,
        "page": page,
        "back": back_to_results(request.GET.get("back"), query),
    }
    return render(request, "search/document.html", context)


def back_to_results(state: str | None, query: str) -> str | None:
    """Return the result page a document was opened from: only the result page's own parameters
    are kept from `state` (it comes from the link, so it is never trusted as a URL)."""
    given = QueryDict((state or "").lstrip("?"))
    kept = {name: given[name][:DOCUMENT_QUERY_CHARS] for name in RESULT_PARAMETERS if given.get(name)}
    if "q" not in kept and query:
        kept["q"] = query
    if "q" not in kept:
        return None
    return reverse("search:search") + "?" + urlencode(kept)


def _seek_first_match(page: DocumentPage, body: str, spans: list[tuple[int, int]], terms) -> None:
    """Point `page` at the first page with a match, keeping a page's worth of budget to show it."""
    for number, (start, end) in enumerate(spans, start=1):
        if terms.scan_budget < (end - start) + DOCUMENT_PAGE_CHARS:
            page.match_search_stopped = True
            return
        page.pages_searched = number
        if count_matches(body[start:end], terms):
            page.number = page.first_match_page = number
            return


def healthz(request: HttpRequest) -> HttpResponse:
    """Return 200 when the database answers (used by docker-compose and load balancers)."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")
