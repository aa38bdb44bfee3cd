"""Client addresses of the tests' own, so throttles never mix their histories, and the throttles
lifted for tests that send many requests (fuzzing). The fixture that gives every test's `client`
an address of its own is in tests/conftest.py."""

from __future__ import annotations

import uuid

from evaluation.judgments import JudgmentThrottle
from search.throttling import DocumentPageThrottle, SchemaThrottle, SearchPageThrottle, SearchThrottle


def unique_address() -> str:
    """Return a client address no other test (or concurrent run) throttles."""
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2]}"


def lift_limits(settings, monkeypatch) -> None:
    """Let every anonymous request through the throttles and the rerank budget (fuzzing sends many)."""
    monkeypatch.setattr(SearchThrottle, "THROTTLE_RATES", {"anon_search": "1000000/min"})
    monkeypatch.setattr(SearchPageThrottle, "THROTTLE_RATES", {"anon_search_page": "1000000/min"})
    monkeypatch.setattr(DocumentPageThrottle, "THROTTLE_RATES", {"anon_document_page": "1000000/min"})
    monkeypatch.setattr(JudgmentThrottle, "THROTTLE_RATES", {"anon_judgment": "1000000/min"})
    monkeypatch.setattr(SchemaThrottle, "THROTTLE_RATES", {"anon_schema": "1000000/min"})
    settings.RERANK_API_ANON_PAIRS_PER_MINUTE = 10**9
    settings.RERANK_API_ANON_CHARS_PER_MINUTE = 10**12
