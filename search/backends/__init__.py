"""The candidate backend named by SEARCH_BACKEND (search.backends.base defines the protocol)."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from documents.models import LIBRARY
from search.backends.base import (
    Candidate,
    CandidateSet,
    CandidatesUnavailable,
    MatchCount,
    Narrowing,
    SearchBackend,
)
from search.query import parse, relaxed, relaxed_notice

__all__ = [
    "Candidate",
    "CandidateSet",
    "CandidatesUnavailable",
    "MatchCount",
    "Narrowing",
    "SearchBackend",
    "count_matches",
    "find_candidates",
    "get_backend",
    "index_hook",
    "rebuild_hook",
    "score_documents",
]


@cache
def _backend(path: str) -> SearchBackend:
    try:
        backend_class = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(f"SEARCH_BACKEND={path!r} cannot be imported: {error}") from error
    return backend_class()


def get_backend() -> SearchBackend:
    """Return the configured backend (one instance per process)."""
    return _backend(settings.SEARCH_BACKEND)


def index_hook(*, changed: list[int], deleted: list[int], collection: str | None) -> None:
    """The DOCUMENTS_INDEX_HOOKS entry that keeps the configured backend in step."""
    get_backend().index_documents(changed=changed, deleted=deleted, collection=collection)


def rebuild_hook(*, collection: str | None) -> str:
    """The DOCUMENTS_REBUILD_HOOKS entry: rebuild the configured backend's index."""
    indexed = get_backend().rebuild(collection=collection)
    return f"full-text index rebuilt: {indexed} documents"


def find_candidates(
    query: str,
    *,
    k: int,
    collection: str = LIBRARY,
    languages: list[str] | None = None,
    expand: bool = False,
    narrowing: Narrowing | None = None,
) -> CandidateSet:
    """Return the configured backend's candidates for a raw web-search query (parsed here).

    Required phrases that no document has are relaxed to their words, with a notice (one more
    backend call, only then). `expand`: forgive typos, complete the last word, find Chinese
    words from their characters (what a person typing wants; plain BM25 without it).
    """
    parsed = parse(query)
    options = {"k": k, "collection": collection, "languages": languages, "expand": expand, "narrowing": narrowing}
    found = get_backend().candidates(parsed, **options)
    if found.candidates or not parsed.required:
        return found
    again = get_backend().candidates(relaxed(parsed), **options)
    if again.candidates:
        again.notices.insert(0, relaxed_notice(parsed))
        again.relaxed = True
    return again


def score_documents(
    query: str,
    ids: list[int],
    *,
    collection: str = LIBRARY,
    languages: list[str] | None = None,
    expand: bool = False,
    narrowing: Narrowing | None = None,
    relaxed_query: bool = False,
) -> dict[int, float]:
    """Return the configured backend's score for a raw query (relaxed and expanded as
    find_candidates did) of each of `ids` that matches it, however far down its order; those that
    do not match are left out, as they are by a backend that cannot score given documents."""
    parsed = parse(query)
    if relaxed_query:
        parsed = relaxed(parsed)
    scorer = getattr(get_backend(), "scores", None)
    if scorer is None or not ids:
        return {}
    return scorer(parsed, ids=list(ids), collection=collection, languages=languages, expand=expand, narrowing=narrowing)


def count_matches(
    query: str,
    *,
    relaxed_query: bool = False,
    collection: str = LIBRARY,
    languages: list[str] | None = None,
    narrowing: Narrowing | None = None,
    since: dict[str, datetime] | None = None,
    expand: bool = False,
) -> MatchCount:
    """Return how many documents match a raw query (relaxed and expanded as find_candidates did),
    with the facets' counts; `since` names the date buckets to count (e.g. {"week": a week ago})."""
    parsed = parse(query)
    if relaxed_query:
        parsed = relaxed(parsed)
    return get_backend().count(
        parsed, collection=collection, languages=languages, narrowing=narrowing, since=since, expand=expand
    )
