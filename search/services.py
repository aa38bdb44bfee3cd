"""search_run: full-text candidates, then the reranker within its time budget, both orderings."""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils.safestring import SafeString

from documents.inputs import clean_text
from documents.models import LIBRARY, Document
from documents.textsearch import detect_language
from search import semantic, worker_client
from search.backends import (
    Candidate,
    CandidateSet,
    CandidatesUnavailable,
    MatchCount,
    Narrowing,
    count_matches,
    find_candidates,
    get_backend,
    score_documents,
)
from search.highlight import QueryTerms, query_terms, snippet
from search.passages import attach_passages, rerank_text
from search.query import parse
from worker import protocol
from worker.protocol import ModelInfo

logger = logging.getLogger(__name__)

# The language filter of the page and the API: a document of mixed Chinese and English counts
# for both.
LANGUAGE_FILTERS = {"zh": ["zh", "mixed"], "en": ["en", "mixed"]}
# The date filter: documents added to the library within the last this many days.
ADDED_WITHIN_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
# Fewer candidates than this, or a query word the library lacks: offer a "did you mean".
SUGGEST_WHEN_FEWER = 3
WORD = re.compile(r"\w+")  # the words a suggestion may change


# The page's one short line for each way the reranked order can be missing (worker_client.NOTICES
# has the statuses; the full reason is behind the line's disclosure).
SHORT_FALLBACKS = {
    "unavailable": "Not reranked: the reranker is unavailable",
    "timeout": "Not reranked: the reranker did not answer in time",
    "busy": "Not reranked: the reranker is busy",
    "error": "Not reranked: the reranker failed",
    "skipped": "Not reranked: a language the model does not serve",
}


class SearchUnavailable(Exception):
    """The full-text engine cannot answer; pages show a 503, the API a JSON error."""


@dataclass
class ResultRow:
    document_id: int
    title: str
    snippet: SafeString | str
    language: str
    fulltext_rank: int | None  # 1-based position in the full-text order; None: found by meaning alone
    fulltext_score: float  # BM25; found by meaning alone: its BM25 for the query all the same (0: none of its words)
    rerank_rank: int | None = None
    rerank_score: float | None = None  # what the reranked order sorts by: model_score, or its blend with BM25
    model_score: float | None = None  # the reranker's own score (a cross-encoder's sigmoid, a bi-encoder's cosine)
    best_chunk: int | None = None  # ordinal of the chunk that won the reranker's max
    best_snippet: SafeString | str = ""  # that chunk, highlighted
    movement: int | None = None  # fulltext_rank - rerank_rank (positive: moved up)
    new_in_top: bool = False  # in the reranked top k but not in the full-text top k
    # Among the candidates only because its meaning is near the query's (search.semantic): the
    # full-text engine did not find it (none of the query's words, or too far down).
    found_by_meaning: bool = False
    meaning_score: float | None = None  # cosine of its chunk nearest the query, when semantic search found it

    @property
    def reranked_snippet(self) -> SafeString | str:
        """Return what the reranked order shows of this result: the chunk that won, highlighted, or
        the document's snippet when no chunk won."""
        return self.best_snippet or self.snippet


@dataclass
class SearchOutcome:
    query: str
    k: int
    k_initial: int
    page: int = 1  # 1-based; each page shows k results of each ordering
    language: str | None = None  # "zh", "en" or None (all)
    suggestion: str | None = None  # a corrected query from the library's vocabulary
    fulltext: list[ResultRow] = field(default_factory=list)
    reranked: list[ResultRow] = field(default_factory=list)
    candidate_count: int = 0  # the rerank pool: the full-text order's first k_initial
    # Documents matching the query under the filters, whatever the pool (exact, or "about").
    total: int = 0
    total_exact: bool = True
    facets: MatchCount = field(default_factory=MatchCount)
    source: str | None = None  # the source filter
    added: str | None = None  # the date filter: "day", "week", "month", "year" or None (any time)
    pages: int = 1  # pages of the full-text order reachable (k per page, SEARCH_MAX_DEPTH at most)
    beyond_pool: bool = False  # this page is past the rerank pool: full-text order only
    reranker: ModelInfo | None = None
    rerank_status: str = "skipped"
    bm25_weight: float = 0.0  # the share of BM25 in the reranked order's score (a bi-encoder's blend)
    notices: list[str] = field(default_factory=list)
    # The notices about the reranker (also in `notices`): the page folds them into one short line.
    rerank_notices: list[str] = field(default_factory=list)
    unscored_count: int = 0  # candidates the reranker could not score in time (no chunk vector yet)
    # Semantic candidates: "ok" (fused into the pool), "off" (SEARCH_SEMANTIC), "none" (no worker
    # with an embedding model), "unavailable" (no query vector in time), "refused" (the exact scan's bound).
    semantic_status: str = "off"
    semantic_path: str = ""  # search.semantic's path: "pgvector", "pgvector+exact", "exact"
    meaning_count: int = 0  # candidates of the pool found by meaning alone
    timings: dict[str, float | None] = field(default_factory=dict)

    @property
    def blend_description(self) -> str:
        """Return how the reranked order's score is made, in words, when it blends in BM25."""
        if not self.bm25_weight:
            return ""
        return (
            f"{self.bm25_weight:g} × BM25 + {1 - self.bm25_weight:g} × reranker score, each scaled to 0–1 "
            "over this search's scored candidates"
        )

    @property
    def moved_count(self) -> int:
        return sum(1 for row in self.reranked if row.movement or row.new_in_top)

    @property
    def is_reranked(self) -> bool:
        return self.rerank_status == "ok"

    @property
    def reranked_pages(self) -> int:
        """Return how many pages the reranked order covers (the pool, k per page)."""
        return max(1, -(-self.candidate_count // self.k))

    @property
    def first_rank(self) -> int:
        return (self.page - 1) * self.k + 1

    @property
    def notice(self) -> str:
        """Return the notices as one line (the API's `notice`)."""
        return " ".join(self.notices)

    @property
    def query_notices(self) -> list[str]:
        """Return the notices about the query and its results, those the page shows in full."""
        return [notice for notice in self.notices if notice not in self.rerank_notices]

    @property
    def is_fallback(self) -> bool:
        """Return whether a stand-in model served instead of the configured one."""
        return bool(self.reranker and self.reranker.is_fallback)

    @property
    def rerank_summary(self) -> str:
        """Return the reranker's part of the page in one short line; the details say the rest."""
        # The model's own name, without its hub owner or folder, or a note in brackets.
        model = self.reranker.model if self.reranker else ""
        name = model.split(" (")[0].rstrip("/").rsplit("/", 1)[-1]
        if self.beyond_pool:
            return f"Full-text order: the reranked order covers pages 1–{self.reranked_pages}"
        if self.rerank_status == "pending":
            return f"Reranking the first {self.candidate_count}…"
        if self.is_reranked:
            line = f"Stand-in reranker: {name}" if self.is_fallback else f"Reranked by {name}"
            return line + (f"; {self.unscored_count} not scored yet" if self.unscored_count else "")
        return SHORT_FALLBACKS.get(self.rerank_status, "Not reranked") + "; full-text order shown"

    @property
    def language_filter(self) -> str:
        """Return the language filter as the page and the API name it: "zh", "en" or "all"."""
        return self.language or "all"


def clean_query(raw: str) -> tuple[str, list[str]]:
    """Return the query as searched and notices about what was changed in it."""
    notices: list[str] = []
    # Control characters (NUL included) never reach PostgreSQL; they carry no meaning in a query.
    query = " ".join(clean_text(raw or "", controls=" ").split())
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
    *,
    query: str,
    k: int | None = None,
    k_initial: int | None = None,
    collection: str = LIBRARY,
    page: int | None = None,
    language: str | None = None,
    lane: str = protocol.API,
    expand: bool = True,
    source: str | None = None,
    added: str | None = None,
    rerank: bool = True,
) -> SearchOutcome:
    """Return both orderings of one page of results for `query` (SQL: the backend's two statements
    and one for the chunks; network: one rerank round trip, cached for the other pages).

    All k_initial candidates are reranked, so every page of the reranked order is right; `page`
    picks which k of each ordering are shown. Pages past the pool show the full-text order alone,
    as deep as SEARCH_MAX_DEPTH. `language` ("zh", "en") keeps documents in it, `source` those of
    that source, `added` ("day", "week", "month", "year") those added within it; the count of
    every match and the facets' counts come from search.backends.postgres.counting.
    `lane` "page" is for a result page a person waits for: the worker serves it before API work.
    `expand` forgives typos, completes the last word and finds Chinese words from their
    characters (search.backends.postgres.vocabulary); False searches the words as typed.
    `rerank` False stops before the reranker (status "pending"): the search page's results as you
    type show the full-text order at once, then ask again for the reranked order (static/js/live.js).
    """
    started = time.perf_counter()
    query, notices = clean_query(query)
    k_initial = clamp(k_initial, settings.SEARCH_K_INITIAL, settings.SEARCH_K_INITIAL_MAX)
    k = min(clamp(k, settings.SEARCH_K_FINAL, k_initial), k_initial)
    language = language if language in LANGUAGE_FILTERS else None
    added = added if added in ADDED_WITHIN_DAYS else None
    outcome = SearchOutcome(
        query=query, k=k, k_initial=k_initial, notices=notices, language=language, source=source or None, added=added
    )
    if not query:
        return outcome
    now = datetime.now(UTC)
    narrowing = Narrowing(
        source=outcome.source, added_since=now - timedelta(days=ADDED_WITHIN_DAYS[added]) if added else None
    )
    # The query's vector is asked for now, and read once BM25 has answered (search.semantic).
    embedding = worker_client.send_embed_query(query) if settings.SEARCH_SEMANTIC else None
    if settings.SEARCH_SEMANTIC:
        outcome.semantic_status = "none" if embedding is None else "unavailable"
    # Deep enough for the page asked for (past the pool: the full-text order alone), within the window.
    asked = max(1, page or 1)
    depth = max(k_initial, min(asked * k, settings.SEARCH_MAX_DEPTH))
    languages = LANGUAGE_FILTERS.get(language)
    found, count_ms = _find_and_count(
        outcome,
        query,
        depth=depth,
        collection=collection,
        languages=languages,
        expand=expand,
        narrowing=narrowing,
        now=now,
    )
    everything = found.candidates
    semantic_started = time.perf_counter()
    query_vector, hits = _semantic_hits(
        outcome, embedding, started, collection=collection, languages=languages, narrowing=narrowing, k=k_initial
    )
    if hits is not None:
        # A document found by meaning alone keeps its BM25 score for the query (past the candidates read).
        bm25_of = functools.partial(
            score_documents,
            query,
            collection=collection,
            languages=languages,
            expand=expand,
            narrowing=narrowing,
            relaxed_query=found.relaxed,
        )
        cosines_of = functools.partial(semantic.document_cosines, query_vector.vector, model=query_vector.model)
        pool = _fused_pool(everything, hits, k_initial, bm25_of=bm25_of, cosines_of=cosines_of)
    else:
        pool = everything[:k_initial]
    semantic_ms = (time.perf_counter() - semantic_started) * 1000
    outcome.candidate_count = len(pool)
    shown = _paginate(outcome, found, depth=depth, asked=asked, page=page)
    # Past the pool only when there is a pool to be past: no candidates is not 'beyond' anything.
    outcome.beyond_pool = bool(pool) and outcome.first_rank > len(pool)
    # Passages and highlights look for the library words matched besides the query's own.
    terms = query_terms(" ".join([query, *found.expanded_words]))
    try:
        # The pool's chunks (the reranker reads them) and the shown page's snippets: never all `depth`.
        attach_passages(pool if not outcome.beyond_pool else everything[shown], terms)
    except DatabaseError as error:
        # The chunks are the library's own rows (PostgreSQL), whatever engine found the candidates.
        raise SearchUnavailable("the document database is not answering") from error
    outcome.notices.extend(found.notices)
    fulltext_ms = (time.perf_counter() - started) * 1000 - count_ms - semantic_ms
    rows = _result_rows(outcome, everything, pool, hits, shown)
    outcome.timings = {
        "fulltext_ms": round(fulltext_ms, 2),
        "semantic_ms": round(semantic_ms, 2) if embedding is not None else None,
        "count_ms": round(count_ms, 2),
        "rerank_ms": None,
        "queue_ms": None,
        "model_ms": None,
    }
    if outcome.beyond_pool:
        outcome.rerank_status = "beyond_pool"
    elif rows and not rerank:
        outcome.rerank_status = "pending"
    elif rows:
        _rerank_pool(outcome, query, rows, pool, terms=terms, shown=shown, lane=lane, query_vector=query_vector)
    if not outcome.is_reranked:
        outcome.reranked = []
    outcome.timings["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
    _log_search(outcome)
    return outcome


def _find_and_count(
    outcome: SearchOutcome,
    query: str,
    *,
    depth: int,
    collection: str,
    languages: tuple[str, ...] | None,
    expand: bool,
    narrowing: Narrowing,
    now: datetime,
) -> tuple[CandidateSet, float]:
    """Return the full-text candidates (`depth` deep) and the milliseconds spent counting; set the
    outcome's suggestion and facets (SQL: the backend's statements, and the counts' one)."""
    count_ms = 0.0
    try:
        found = find_candidates(
            query, k=depth, collection=collection, languages=languages, expand=expand, narrowing=narrowing
        )
        if found.unknown_terms or (found.known_terms and len(found.candidates) < SUGGEST_WHEN_FEWER):
            outcome.suggestion = suggest_query(query, collection=collection)
        elif found.stood_in_terms:
            outcome.suggestion = _agreeing_suggestion(query, found.expanded_words, collection=collection)
        counting = time.perf_counter()
        since = {"any": datetime(1970, 1, 1, tzinfo=UTC)}
        since.update((name, now - timedelta(days=days)) for name, days in ADDED_WITHIN_DAYS.items())
        # Nothing found and no filter that could have hidden it: nothing matches, nothing to count.
        if found.candidates or languages or narrowing:
            outcome.facets = count_matches(
                query,
                relaxed_query=found.relaxed,
                collection=collection,
                languages=languages,
                narrowing=narrowing,
                since=since,
                expand=expand,
            )
        count_ms = (time.perf_counter() - counting) * 1000
    except CandidatesUnavailable as error:
        raise SearchUnavailable(str(error)) from error
    return found, count_ms


def _paginate(outcome: SearchOutcome, found: CandidateSet, *, depth: int, asked: int, page: int | None) -> slice:
    """Set the outcome's total, pages and page (with notices when the page asked for is past the
    last, or the last page stops short of the total); return the slice of the orderings shown."""
    everything = found.candidates
    outcome.total, outcome.total_exact = max(outcome.facets.total, len(everything)), outcome.facets.exact
    if len(everything) < depth:
        reachable = len(everything)  # the engine found no more: paging ends here
        if found.exact:
            outcome.total, outcome.total_exact = len(everything), True
    else:
        reachable = min(outcome.total, settings.SEARCH_MAX_DEPTH)
    outcome.pages = max(1, -(-reachable // outcome.k))
    outcome.page = min(asked, outcome.pages)
    if page and page > outcome.pages:
        pages = "1 page" if outcome.pages == 1 else f"{outcome.pages} pages"
        outcome.notices.append(f"The results fill only {pages}; showing the last.")
    if reachable < outcome.total and outcome.page == outcome.pages:
        outcome.notices.append(
            f"Only the first {reachable:,} results can be paged through; narrow the search to see the others."
        )
    return slice(outcome.first_rank - 1, outcome.first_rank - 1 + outcome.k)


def _result_rows(
    outcome: SearchOutcome,
    everything: list[Candidate],
    pool: list[Candidate],
    hits: semantic.SemanticHits | None,
    shown: slice,
) -> list[ResultRow]:
    """Set the outcome's full-text page; return the pool's rows, in the pool's order, for the reranker."""
    all_rows = [
        ResultRow(
            document_id=c.document_id,
            title=c.title,
            snippet=c.snippet,
            language=c.language,
            fulltext_rank=i,
            fulltext_score=round(c.score, 4),
        )
        for i, c in enumerate(everything, start=1)
    ]
    by_id = {row.document_id: row for row in all_rows}
    rows = [by_id.get(c.document_id) or _meaning_row(c) for c in pool]
    for row in rows:
        if hits is not None and row.document_id in hits.cosine:
            row.meaning_score = hits.cosine[row.document_id]
    outcome.meaning_count = sum(1 for row in rows if row.found_by_meaning)
    outcome.fulltext = all_rows[shown]
    return rows


def _rerank_pool(
    outcome: SearchOutcome,
    query: str,
    rows: list[ResultRow],
    pool: list[Candidate],
    *,
    terms: QueryTerms,
    shown: slice,
    lane: str,
    query_vector: object,
) -> None:
    """Ask the worker to score the pool; set the outcome's reranked order, status, timings and the
    notices about the reranker (network: one rerank round trip, or the rerank cache)."""
    groups = [[rerank_text(c.title, text) for text in c.chunks] or [c.title] for c in pool]
    chunk_ids = [list(c.chunk_ids) if c.chunks else [None] for c in pool]
    versions = [f"{c.document_id}:{c.content_hash}" for c in pool]
    reply = worker_client.rerank(
        query,
        groups,
        language=detect_language(query),
        versions=versions,
        lane=lane,
        chunk_ids=chunk_ids,
        query_vector=query_vector,
    )
    outcome.rerank_status = reply.status
    outcome.reranker = reply.model
    outcome.timings.update(
        rerank_ms=reply.total_ms, queue_ms=reply.queue_ms, model_ms=reply.model_ms, rerank_cached=reply.cached
    )
    if reply.vectors:
        outcome.timings.update(vectors_stored=reply.vectors.stored, vectors_embedded_now=reply.vectors.embedded)
    rerank_notices: list[str] = []
    if reply.ok:
        _apply_scores(outcome, rows, pool, reply, terms, shown)
        if reply.unscored:
            count = outcome.unscored_count = len(reply.unscored)
            why = (
                "their chunk vectors are not computed yet (an import still running?)"
                if reply.vectors is not None
                else "the reranker ran out of time before it reached them"
            )
            rerank_notices.append(
                f"{count} of the {len(rows)} candidates could not be scored in time: {why}. They follow the "
                "reranked ones, in full-text order."
            )
    else:
        rerank_notices.append(reply.notice + " Showing the full-text order.")
    if reply.model and reply.model.is_fallback:
        served = reply.model.label or f"{reply.model.model} ({reply.model.kind})"
        rerank_notices.insert(
            0, f"The configured reranker {reply.model.requested} is not loaded; serving {served} instead."
        )
    outcome.notices.extend(rerank_notices)
    outcome.rerank_notices = rerank_notices


def _semantic_hits(
    outcome: SearchOutcome,
    embedding: object,
    started: float,
    *,
    collection: str,
    languages: list[str] | None,
    narrowing: Narrowing,
    k: int,
) -> tuple[object, semantic.SemanticHits | None]:
    """Return the query's vector and the documents nearest it, or (None, None) when there are none
    (no worker with an embedding model, no answer within SEARCH_SEMANTIC_TIMEOUT of the search's
    start, the exact scan's bound). SQL: search.semantic's statements."""
    if embedding is None:
        return None, None
    budget = max(0.05, settings.SEARCH_SEMANTIC_TIMEOUT - (time.perf_counter() - started))
    vector = worker_client.read_query_vector(embedding, budget)
    if vector.skipped:
        logger.info("semantic candidates skipped: %s", vector.skipped)
        return None, None
    try:
        hits = semantic.nearest_documents(
            vector.vector,
            model=vector.model,
            collection=collection,
            languages=languages,
            narrowing=narrowing,
            documents=k,
        )
    except DatabaseError as error:
        logger.warning("semantic candidates failed: %s: %s", type(error).__name__, error)
        return vector, None
    outcome.semantic_path = hits.path
    if hits.refused:
        outcome.semantic_status = "refused"
        return vector, None
    outcome.semantic_status = "ok"
    return vector, hits


def _fused_pool(
    everything: list[Candidate],
    hits: semantic.SemanticHits,
    k: int,
    *,
    bm25_of: Callable[[list[int]], dict[int, float]] | None = None,
    cosines_of: Callable[[list[int]], dict[int, float]] | None = None,
) -> list[Candidate]:
    """Return the rerank pool: BM25's first `k` candidates and the `k` nearest documents, fused
    (SEARCH_FUSION: weighted RRF, or "linear"; each weighs BM25 by SEARCH_FUSION_BM25_WEIGHT), the
    first `k` (SQL: one statement for the documents found by meaning alone, `bm25_of`'s for their
    BM25 scores, and with "linear" `cosines_of`'s for BM25's candidates' cosines).

    A document found by meaning alone may still hold some of the query's words, ranked past the
    candidates BM25 gave: `bm25_of` (search.backends.score_documents) gives it its real BM25 score,
    which the fusion and the bi-encoder's blend read; one that matches none of them scores 0.
    """
    bm25 = [c.document_id for c in everything[:k]]
    by_id = {c.document_id: c for c in everything}
    new = [document_id for document_id in hits.documents if document_id not in by_id]
    scores = _bm25_scores(bm25_of, new) if new else {}
    fused = None
    if settings.SEARCH_FUSION == "linear":
        fused = _linear_fusion(bm25, hits, {**{i: by_id[i].score for i in by_id}, **scores}, cosines_of)
    if fused is None:
        # Weighted RRF: weight 2w for BM25's list and 2(1 - w) for the vectors' (w = 0.5: plain RRF).
        weight = settings.SEARCH_FUSION_BM25_WEIGHT
        ranked = semantic.reciprocal_rank_fusion([bm25, hits.documents], weights=[2 * weight, 2 * (1 - weight)])
        fused = [document_id for document_id, _ in ranked]
    fused = fused[:k]
    kept = set(fused)
    wanted = [document_id for document_id in new if document_id in kept]
    if wanted:
        fields = ("id", "title", "language", "source", "content_hash")
        for document in Document.objects.filter(pk__in=wanted).only(*fields):
            by_id[document.pk] = Candidate(
                document_id=document.pk,
                title=document.title,
                language=document.language,
                source=document.source,
                score=scores.get(document.pk, 0.0),
                content_hash=document.content_hash,
            )
    pool = [by_id[document_id] for document_id in fused if document_id in by_id]
    for candidate in pool:
        candidate.near_ordinals = hits.near_ordinals.get(candidate.document_id, [])
    return pool


def _linear_fusion(
    bm25: list[int],
    hits: semantic.SemanticHits,
    bm25_scores: dict[int, float],
    cosines_of: Callable[[list[int]], dict[int, float]] | None,
) -> list[int] | None:
    """Return BM25's and the vectors' documents by w × minmax(BM25) + (1 − w) × minmax(cosine), both
    scaled over the two lists together (w = SEARCH_FUSION_BM25_WEIGHT; ties: BM25's order, then the
    vectors'); None when BM25's candidates' cosines cannot be read (the caller falls back on RRF).

    A document with no chunk vector yet takes the lowest cosine; one that holds none of the query's
    words, BM25 0. In the manner of Elasticsearch's linear retriever with its minmax normalizer,
    except that every document gets both scores (Elasticsearch counts it only in the lists that
    returned it).
    """
    union = list(dict.fromkeys([*bm25, *hits.documents]))
    cosine = dict(hits.cosine)
    lacking = [document_id for document_id in union if document_id not in cosine]
    if lacking:
        if cosines_of is None:
            return None
        try:
            cosine.update(cosines_of(lacking))
        except DatabaseError as error:
            logger.warning("cosines of BM25's candidates failed (RRF instead): %s: %s", type(error).__name__, error)
            return None
    weight = settings.SEARCH_FUSION_BM25_WEIGHT
    lexical = _minmax({document_id: bm25_scores.get(document_id, 0.0) for document_id in union})
    meaning = _minmax({document_id: cosine[document_id] for document_id in union if document_id in cosine})
    fused = {i: weight * lexical[i] + (1 - weight) * meaning.get(i, 0.0) for i in union}
    position = {document_id: i for i, document_id in enumerate(union)}
    return sorted(union, key=lambda i: (-round(fused[i], 9), position[i]))


def _minmax(values: dict[int, float]) -> dict[int, float]:
    """Scale to [0, 1]; a scale with no spread counts as 1 for all (as bm25_blend)."""
    if not values:
        return {}
    low, high = min(values.values()), max(values.values())
    return {key: (value - low) / (high - low) if high - low > 1e-12 else 1.0 for key, value in values.items()}


def _bm25_scores(bm25_of: Callable[[list[int]], dict[int, float]] | None, ids: list[int]) -> dict[int, float]:
    """Return `bm25_of(ids)`, or nothing (they score 0) when there is no scorer or the engine fails."""
    if bm25_of is None:
        return {}
    try:
        return bm25_of(ids)
    except CandidatesUnavailable as error:
        logger.warning("BM25 scores of the documents found by meaning alone failed (they score 0): %s", error)
        return {}


def _meaning_row(candidate: Candidate) -> ResultRow:
    """Return the row of a candidate that semantic search alone found: no full-text rank, and its
    BM25 score for the query (0 when it holds none of the query's words)."""
    return ResultRow(
        document_id=candidate.document_id,
        title=candidate.title,
        snippet=candidate.snippet,
        language=candidate.language,
        fulltext_rank=None,
        fulltext_score=round(candidate.score, 4),
        found_by_meaning=True,
    )


def _log_search(outcome: SearchOutcome) -> None:
    """Log one line per search: sizes, outcome, timings, model; never the query or any text.

    A fallback's reason is on the page; the worker's start-up log explains a missing model once.
    """
    timings = outcome.timings
    model = outcome.reranker
    logger.info(
        "search: query_chars=%d candidates=%d page=%d lang=%s status=%s cached=%s fulltext_ms=%s rerank_ms=%s "
        "model_ms=%s total_ms=%s model=%s kind=%s",
        len(outcome.query),
        outcome.candidate_count,
        outcome.page,
        outcome.language_filter,
        outcome.rerank_status if outcome.candidate_count else "no-candidates",
        timings.get("rerank_cached", "-"),
        timings.get("fulltext_ms"),
        timings.get("rerank_ms"),
        timings.get("model_ms"),
        timings.get("total_ms"),
        model.model if model else "-",
        model.kind if model else "-",
    )


def _agreeing_suggestion(query: str, expanded_words: list[str], *, collection: str) -> str | None:
    """Return the corrected query when each word it changes is one the results already include
    (pythn: "Did you mean python snake?" beside "Including results for python"), else None: a
    completed word (pyth, found as python) is not offered a correction to another word (path).
    SQL: suggest_query's reads."""
    suggestion = suggest_query(query, collection=collection)
    if suggestion is None:
        return None
    included = {word.casefold() for word in expanded_words}
    changed = set(WORD.findall(suggestion.casefold())) - set(WORD.findall(query.casefold()))
    return suggestion if changed and changed <= included else None


def suggest_query(query: str, *, collection: str = LIBRARY) -> str | None:
    """Return a corrected query from the library's vocabulary, or None (SQL: a few statements)."""
    return get_backend().suggest(parse(query), collection=collection)


def bm25_blend(bm25: dict[int, float], model: dict[int, float], *, weight: float) -> dict[int, float]:
    """Return weight * minmax(bm25) + (1 - weight) * minmax(model) for each key of `model`.

    Min-max over the query's scored candidates puts BM25 (unbounded) and the model's score (a
    cosine in a narrow band) on one scale; a scale with no spread counts as 1 for all.
    """
    lexical, semantic = _minmax(bm25), _minmax(model)
    return {key: weight * lexical[key] + (1 - weight) * semantic[key] for key in model}


def _apply_scores(outcome: SearchOutcome, rows: list[ResultRow], candidates: list, reply, terms, shown: slice) -> None:
    scored: dict[int, float] = {}  # row position -> the model's score
    for position, (row, candidate, score, best) in enumerate(
        zip(rows, candidates, reply.scores, reply.best, strict=True)
    ):
        if score is None:
            continue  # not scored in time (no chunk vector yet): kept, after the scored ones
        scored[position] = score
        row.model_score = row.rerank_score = round(score, 4)
        if 0 <= best < len(candidate.chunk_ordinals):
            row.best_chunk = candidate.chunk_ordinals[best]
            row.best_snippet = snippet(candidate.chunks[best], terms)
    weight = settings.RERANK_BI_ENCODER_BM25_WEIGHT if reply.model and reply.model.kind == "bi-encoder" else 0.0
    if weight and scored:
        outcome.bm25_weight = weight
        for position, blended in bm25_blend({i: rows[i].fulltext_score for i in scored}, scored, weight=weight).items():
            rows[position].rerank_score = round(blended, 4)
    # Ties and unscored candidates keep the pool's order (BM25's, or the fused order with semantic candidates).
    pool_order = {id(row): i for i, row in enumerate(rows)}
    ordered = sorted(rows, key=lambda r: (r.rerank_score is None, -(r.rerank_score or 0.0), pool_order[id(r)]))
    on_page = range(shown.start + 1, shown.stop + 1)
    for position, row in enumerate(ordered, start=1):
        row.rerank_rank = position
        row.movement = None if row.fulltext_rank is None else row.fulltext_rank - position
        # New: shown on this page of the reranked order, not on this page of the full-text order.
        row.new_in_top = row.fulltext_rank not in on_page
    outcome.reranked = ordered[shown]
