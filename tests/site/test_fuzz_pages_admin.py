"""Property-based fuzzing (hypothesis) of the page forms and the admin list filters, beside the
API fuzz (test_api_schema_fuzz.py, tests/search/test_fuzz_search.py,
tests/documents/test_fuzz_documents_api.py): the document page's query, page and back
link, the judging form, and every admin list's search, filters, lookups, ordering and page, with
hostile text and out-of-range numbers. No answer is a 5xx, and none shows the database's words.
(The search page's form is fuzzed in tests/search/test_fuzz_search.py.) Prints how many cases ran."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from documents.models import LIBRARY, Document
from tests.support.clients import lift_limits, unique_address
from tests.support.fuzz_counts import report

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 300
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # no example folder in the checkout; a failure prints its reproduction
    suppress_health_check=list(HealthCheck),
)
# What a visitor must never see: a stack trace or the database's own words.
LEAKS = ("Traceback", "psycopg", "ProgrammingError", "DataError", "OperationalError", "IntegrityError")
HOSTILE = [
    "\x00", "a\x00", "\x01", "\x7f", "\u200b", "\ufeff", "\u202e", "\ufb2c" * 600, "'", '"', "\\", "%", "_", "*",
    "<script>", "&amp;", "苹果", "🍎", "NULL", "None", "true", "1e3", "-1", "0", "١٢", "2026-13-45", "9" * 30,
    "9999999999", "-9223372036854775809", "9223372036854775808", "__", "x" * 5000, "https://example.com/", "//evil",
]  # fmt: skip
# Lookups a hand-written admin address may add to a field name.
LOOKUPS = ["", "__exact", "__in", "__gte", "__lt", "__isnull", "__icontains", "__id__exact", "__year", "__regex"]


def values() -> st.SearchStrategy[str]:
    """Hostile pieces, arbitrary text (no lone surrogates: they cannot travel in a URL), numbers."""
    soup = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=6)), min_size=1, max_size=4).map("".join)
    numbers = st.integers(-(2**70), 2**70).map(str)
    return st.one_of(st.sampled_from(HOSTILE), soup, st.text(max_size=40), numbers)


def assert_answered(response, what: object) -> None:
    assert response.status_code < 500, (what, response.status_code)
    body = response.content.decode(errors="replace")
    for leak in LEAKS:
        assert leak not in body, (what, leak)


def admin_lists() -> list[tuple[str, list[str]]]:
    """Return each registered admin list's URL and the parameter names it may be sent: search,
    ordering, page, its list filters, and each of its model's fields."""
    lists = []
    for model, model_admin in admin.site._registry.items():
        names = {"q", "o", "p", "e", "_to_field", "all"}
        for spec in model_admin.list_filter:
            field = spec[0] if isinstance(spec, tuple) else spec
            names.add(field if isinstance(field, str) else field.parameter_name)
        names.update(field.name for field in model._meta.get_fields())
        lists.append((f"/admin/{model._meta.app_label}/{model._meta.model_name}/", sorted(names)))
    return lists


@pytest.fixture
def fuzz_limits(settings, monkeypatch):
    lift_limits(settings, monkeypatch)


def test_it_answers_any_admin_list_filter(staff_client, capsys):
    lists = admin_lists()
    count = 0

    @FUZZ
    @given(data=st.data())
    def case(data: st.DataObject) -> None:
        nonlocal count
        count += 1
        url, names = data.draw(st.sampled_from(lists))
        params = data.draw(
            st.dictionaries(
                st.builds(lambda name, lookup: name + lookup, st.sampled_from(names), st.sampled_from(LOOKUPS)),
                values(),
                min_size=1,
                max_size=3,
            )
        )
        assert_answered(staff_client.get(url, params), (url, params))

    case()
    report(capsys, "admin list filters", count)


def test_it_answers_any_document_page_address(fuzz_limits, capsys):
    document = Document.objects.filter(collection=LIBRARY).order_by("id").first()
    client = Client(REMOTE_ADDR=unique_address())
    count = 0

    @FUZZ
    @given(q=st.one_of(st.none(), values()), page=st.one_of(st.none(), values()), back=st.one_of(st.none(), values()))
    def case(q: str | None, page: str | None, back: str | None) -> None:
        nonlocal count
        count += 1
        params = {name: value for name, value in {"q": q, "page": page, "back": back}.items() if value is not None}
        assert_answered(client.get(f"/documents/{document.pk}", params), params)

    case()
    report(capsys, "document page", count)


@pytest.mark.parametrize("who", ["visitor", "staff"])
def test_it_answers_any_judging_form(fuzz_limits, staff_client, who, capsys):
    client = staff_client if who == "staff" else Client(REMOTE_ADDR=unique_address())
    document_ids = [str(pk) for pk in Document.objects.filter(collection=LIBRARY).values_list("pk", flat=True)[:3]]
    field = st.one_of(st.none(), values())
    count = 0

    @FUZZ
    @given(
        query=field,
        document_id=st.one_of(st.sampled_from(document_ids), field),
        relevant=st.one_of(st.sampled_from(["0", "1"]), field),
        ordering=st.one_of(st.sampled_from(["fulltext", "reranked"]), field),
        rank=field,
        back=field,
    )
    def case(**form: str | None) -> None:
        nonlocal count
        count += 1
        sent = {name: value for name, value in form.items() if value is not None}
        assert_answered(client.post("/judgments", sent), sent)

    case()
    report(capsys, f"judging form ({who})", count)
