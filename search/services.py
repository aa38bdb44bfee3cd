"""search_run: full-text candidates, then the reranker within its time budget, both orderings."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError
from django.utils.safestring import SafeString

from documents.models import LIBRARY
from documents.textsearch import detect_language
from search import rerank_client
from search.backends import CandidatesUnavailable, find_candidates
from search.highlight import query_terms, snippet
from search.passages import attach_passages, rerank_text

# Control characters (NUL included) never reach PostgreSQL; they carry no meaning in a query.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class SearchUnavailable(Exception):
    """The full-text engine cannot answer; pages show a 503, the API a JSON error."""


@dataclass
class ResultRow:
    document_id: int
    title: str
    snippet: SafeString | str
    language: str
    fulltext_rank: int  # 1-based position in the full-text order of all candidates
    fulltext_score: float
    rerank_rank: int | None = None
    rerank_score: float | None = None
    best_chunk: int | None = None  # ordinal of the chunk that won the reranker's max
    best_snippet: SafeString | str = ""  # that chunk, highlighted
    movement: int | None = None  # fulltext_rank - rerank_rank (positive: moved up)
    new_in_top: bool = False  # in the reranked top k but not in the full-text top k


@dataclass
class SearchOutcome:
    query: str
    k: int
    k_initial: int
    fulltext: list[ResultRow] = field(default_factory=list)
    reranked: list[ResultRow] = field(default_factory=list)
    candidate_count: int = 0
    reranker: dict | None = None
    rerank_status: str = "skipped"
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float | None] = field(default_factory=dict)

    @property
    def moved_count(self) -> int:
        return sum(1 for row in self.reranked if row.movement or row.new_in_top)

    @property
    def is_reranked(self) -> bool:
        return self.rerank_status == "ok"


def clean_query(raw: str) -> tuple[str, list[str]]:
    """Return the query as searched and notices about what was changed in it."""
    notices: list[str] = []
    query = " ".join(CONTROL_CHARS.sub(" ", raw or "").split())
    limit = settings.SEARCH_MAX_QUERY_CHARS
    if len(query) > limit:
        query = query[:limit]
        notices.append(f"Your query was longer than {limit} characters; only the first {limit} were searched.")
    return query, notices


def clamp(value: int | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    return max(1, min(int(value), maximum))


def search_run(
    *, query: str, k: int | None = None, k_initial: int | None = None, collection: str = LIBRARY
) -> SearchOutcome:
    """Return both orderings for `query` (SQL: the backend's two statements and one for the chunks;
    network: one rerank round trip)."""
    started = time.perf_counter()
    query, notices = clean_query(query)
    k_initial = clamp(k_initial, settings.SEARCH_K_INITIAL, settings.SEARCH_K_INITIAL_MAX)
    k = clamp(k, settings.SEARCH_K_FINAL, k_initial)
    outcome = SearchOutcome(query=query, k=k, k_initial=k_initial, notices=notices)
    if not query:
        return outcome
    terms = query_terms(query)
    try:
        found = find_candidates(query, k=k_initial, collection=collection)
    except CandidatesUnavailable as error:
        raise SearchUnavailable(str(error)) from error
    try:
        attach_passages(found.candidates, terms)
    except DatabaseError as error:
        # The chunks are the library's own rows (PostgreSQL), whatever engine found the candidates.
        raise SearchUnavailable("the document database is not answering") from error
    outcome.notices.extend(found.notices)
    fulltext_ms = (time.perf_counter() - started) * 1000
    rows = [
        ResultRow(
            document_id=c.document_id,
            title=c.title,
            snippet=c.snippet,
            language=c.language,
            fulltext_rank=i,
            fulltext_score=round(c.score, 4),
        )
        for i, c in enumerate(found.candidates, start=1)
    ]
    outcome.candidate_count = len(rows)
    outcome.fulltext = rows[:k]
    outcome.timings = {"fulltext_ms": round(fulltext_ms, 2), "rerank_ms": None, "queue_ms": None, "model_ms": None}
    if rows:
        groups = [[rerank_text(c.title, text) for text in c.chunks] or [c.title] for c in found.candidates]
        versions = [f"{c.document_id}:{c.content_hash}" for c in found.candidates]
        reply = rerank_client.rerank(query, groups, language=detect_language(query), versions=versions)
        outcome.rerank_status = reply.status
        outcome.reranker = reply.model
        outcome.timings.update(
            rerank_ms=reply.total_ms, queue_ms=reply.queue_ms, model_ms=reply.model_ms, rerank_cached=reply.cached
        )
        if reply.ok:
            _apply_scores(outcome, rows, found.candidates, reply, terms)
        else:
            outcome.notices.append(reply.notice + " Showing the full-text order.")
        if reply.model and reply.model.get("fallback_reason"):
            outcome.notices.append(
                f"The configured reranker {reply.model['requested']} is not loaded; serving "
                f"{reply.model['model']} ({reply.model['kind']}) instead."
            )
    if not outcome.is_reranked:
        outcome.reranked = []
    outcome.timings["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return outcome


def _apply_scores(outcome: SearchOutcome, rows: list[ResultRow], candidates: list, reply, terms) -> None:
    for row, candidate, score, best in zip(rows, candidates, reply.scores, reply.best, strict=True):
        row.rerank_score = round(score, 4)
        if 0 <= best < len(candidate.chunk_ordinals):
            row.best_chunk = candidate.chunk_ordinals[best]
            row.best_snippet = snippet(candidate.chunks[best], terms)
    ordered = sorted(rows, key=lambda r: (-r.rerank_score, r.fulltext_rank))
    for position, row in enumerate(ordered, start=1):
        row.rerank_rank = position
        row.movement = row.fulltext_rank - position
        row.new_in_top = row.fulltext_rank > outcome.k
    outcome.reranked = ordered[: outcome.k]
