"""Property-based fuzzing (hypothesis) of the search page, the document page and the search and
rerank APIs: arbitrary unicode, control characters and NUL bytes, very long strings, unbalanced
quotes and query operators. Never a 500, never a database error reaching the visitor.

Each test prints how many cases it ran (tests/support/fuzz_counts.py).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from documents.models import LIBRARY, Document
from tests.support.clients import lift_limits
from tests.support.fuzz_counts import report

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 300
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # no example folder in the checkout; a failure prints its reproduction
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Seconds a fuzzed search waits for the session's worker: enough to rerank a few candidates.
RERANK_SECONDS = 1.0
# What a visitor must never see: a stack trace or the database's own words.
LEAKS = ("Traceback", "psycopg", "ProgrammingError", "DataError", "OperationalError", "syntax error in tsquery")
SYNTAX = [
    '"', "'", "-", "--", "OR", "or", "AND", "NOT", "(", ")", "&", "|", "!", ":*", "<->", "<2>", "\\", "*",
    "%", "_", ";", "/*", "*/", "\x00", "\x01", "\x1f", "\x7f", "\u200b", "\ufeff", "\u202e", "\u0301",
    "apple", "python", "苹果", "营养", "🍎", "ﷺ", "\U0001f600", "<script>", "&amp;", "%00", "NULL",
]  # fmt: skip


def texts() -> st.SearchStrategy[str]:
    """Arbitrary unicode (no lone surrogates: they cannot be sent in a URL), syntax soup, long runs."""
    anything = st.text(max_size=300)
    soup = st.lists(st.one_of(st.sampled_from(SYNTAX), st.text(max_size=6)), max_size=40)
    long_runs = st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=12), st.integers(50, 4000))
    return st.one_of(anything, soup.map(" ".join), soup.map("".join), long_runs)


def numbers() -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.none(), st.integers(-1000, 300).map(str), st.sampled_from(["", "1e3", "١٢", "9" * 5000]), st.text(max_size=8)
    )


def valid_count(value: str | None) -> bool:
    """Return whether `value` is a k the site takes: absent or empty, or 1 to 200 in ASCII digits."""
    if not value:
        return True
    return bool(re.fullmatch(r"[+-]?[0-9]{1,10}", value)) and 1 <= int(value) <= 200


def query_params(q: str, k: str | None, k_initial: str | None) -> dict[str, str]:
    return {name: value for name, value in {"q": q, "k": k, "k_initial": k_initial}.items() if value is not None}


def assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} reached the visitor"


@pytest.fixture(autouse=True)
def _fuzz_site(settings, monkeypatch, rerank_worker):
    """Searches reach the session's worker briefly; the throttles and budgets let every case through."""
    settings.RERANK_TIMEOUT = RERANK_SECONDS
    lift_limits(settings, monkeypatch)


def test_it_answers_any_query_on_the_search_page(client, capsys):
    count = 0

    @FUZZ
    @given(q=texts(), k=numbers(), k_initial=numbers())
    def case(q: str, k: str | None, k_initial: str | None) -> None:
        nonlocal count
        count += 1
        response = client.get("/search", query_params(q, k, k_initial))
        html = response.content.decode()
        assert_no_leak(html)
        if response.status_code == 400:
            # Only a count that is not a whole number from 1 to 200 is refused, as by the API.
            assert {problem.split(":")[0] for problem in response.context["problems"]} <= {"k", "k_initial"}
            assert not all(valid_count(value) for value in (k, k_initial))
            return
        assert response.status_code == 200
        assert all(valid_count(value) for value in (k, k_initial))
        outcome = response.context["outcome"]
        assert len(outcome.query) <= 500 and "\x00" not in outcome.query

    case()
    report(capsys, "search page", count)


def test_it_answers_any_query_in_the_search_api(client, capsys):
    count = 0

    @FUZZ
    @given(q=texts(), k=numbers(), k_initial=numbers())
    def case(q: str, k: str | None, k_initial: str | None) -> None:
        nonlocal count
        count += 1
        response = client.get("/api/v1/search", query_params(q, k, k_initial))
        assert response.status_code in (200, 400), response.status_code
        assert response["Content-Type"] == "application/json"
        assert_no_leak(response.content.decode())
        body = response.json()
        if response.status_code == 400:
            assert body["error"] == "Invalid request." and set(body["fields"]) <= {"q", "k", "k_initial"}
        else:
            assert len(body["fulltext"]) <= body["k"] and body["rerank_status"] in {
                "ok", "timeout", "busy", "skipped", "unavailable", "error",
            }  # fmt: skip

    case()
    report(capsys, "search API", count)


def test_it_shows_any_document_with_any_query(client, capsys):
    document = Document.objects.filter(collection=LIBRARY).order_by("pk").first()
    count = 0

    @FUZZ
    @given(q=texts())
    def case(q: str) -> None:
        nonlocal count
        count += 1
        response = client.get(f"/documents/{document.pk}", {"q": q})
        assert response.status_code == 200
        assert_no_leak(response.content.decode())

    case()
    report(capsys, "document page", count)


def test_it_answers_any_rerank_request(client, capsys):
    count = 0
    documents = st.lists(st.one_of(texts(), st.just("")), min_size=0, max_size=8)

    @FUZZ
    @given(query=texts(), documents=documents, top_n=st.one_of(st.none(), st.integers(-5, 20)))
    def case(query: str, documents: list[str], top_n: int | None) -> None:
        nonlocal count
        count += 1
        payload = {"query": query, "documents": documents}
        if top_n is not None:
            payload["top_n"] = top_n
        response = client.post("/api/v1/rerank", payload, content_type="application/json")
        assert response.status_code in (200, 400, 413, 503, 504), response.status_code
        assert_no_leak(response.content.decode())
        body = response.json()
        if response.status_code == 200:
            indexes = [item["index"] for item in body["results"]]
            assert len(indexes) == min(top_n or len(documents), len(documents))
            assert len(set(indexes)) == len(indexes) and set(indexes) <= set(range(len(documents)))
        else:
            assert body["error"]

    case()
    report(capsys, "rerank API", count)
