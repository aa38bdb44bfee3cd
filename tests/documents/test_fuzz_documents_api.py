"""Property-based fuzzing (hypothesis) of the documents API's writes, as staff: JSON bodies whose
strings (title, body, source, external id, metadata keys and values) carry NUL bytes, lone
surrogates, control characters and very long runs. Every answer is 200/201/400, never a 5xx;
what is stored is text PostgreSQL accepts. Prints how many cases ran."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from documents.models import Document
from tests.support.fuzz_counts import report

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 300
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
HOSTILE = ["\x00", "\ud800", "\udfff", "\x1b[31m", "\u202e", "\ufeff", "'; DROP TABLE x; --", "<script>", "苹果", "🍎"]
LIST_URL = "/api/v1/documents"


def strings(max_size: int = 40) -> st.SearchStrategy[str]:
    pieces = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8)), max_size=max_size)
    return st.one_of(pieces.map("".join), st.text(max_size=max_size))


def metadata() -> st.SearchStrategy[object]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), strings(10))
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(strings(6), inner, max_size=3)),
        max_leaves=8,
    )


def test_it_stores_or_refuses_any_document_a_staff_client_sends(staff_api, capsys):
    count = 0

    @FUZZ
    @given(
        title=strings(),
        body=strings(60),
        source=strings(),
        external_id=strings(),
        meta=st.dictionaries(strings(6), metadata(), max_size=4),
        patch=st.booleans(),
    )
    def case(title: str, body: str, source: str, external_id: str, meta: dict, patch: bool) -> None:
        nonlocal count
        count += 1
        payload = {"title": title, "body": body, "source": source, "external_id": external_id, "metadata": meta}
        raw = json.dumps(payload)  # \\ud800 and \\u0000 travel as JSON escapes, as any client may send them
        response = staff_api.post(LIST_URL, raw, content_type="application/json")
        assert response.status_code in (200, 201, 400), (response.status_code, response.content[:300])
        if response.status_code == 400:
            assert response.json()["error"]
            return
        stored = Document.objects.get(pk=response.json()["id"])
        for value in (stored.title, stored.body, stored.source, stored.external_id, json.dumps(stored.metadata)):
            assert "\x00" not in value and "\\u0000" not in value
            value.encode("utf-8")  # no lone surrogate made it in
        if patch:
            changed = staff_api.patch(f"{LIST_URL}/{stored.pk}", raw, content_type="application/json")
            assert changed.status_code in (200, 400), (changed.status_code, changed.content[:300])

    case()
    report(capsys, "documents API writes", count)
