"""Full-text candidates from PostgreSQL: web-search syntax, cover-density ranking, GIN index.

The query runs against the stored `search_vector` (never a vector computed at query time).
Documents matching every term come first; when fewer than k match all terms, documents
matching some of them fill the list, so the reranker still gets candidates to judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from documents.models import LIBRARY, Chunk
from documents.textsearch import TS_CONFIG, segment_query
from search.highlight import QueryTerms, count_matches, query_terms, snippet

# Chunks of one document sent to the reranker at most: the ones with the most query-term
# matches (the first chunk, which carries the title's context, is always among them).
MAX_CHUNKS_PER_DOCUMENT = 8

# ts_rank_cd normalisation 32 maps rank to rank/(rank+1): scores in [0, 1) that read well.
# Ranking reads every matching row's stored vector, so for a term in half of a million documents
# only a capped pool is ranked (SEARCH_RANK_CAP): documents matching every term first, then, only
# when too few do, documents matching some. The vector is the stored column, never computed here.
# A query with an exclusion (!) is never relaxed to OR; the check reads q_all itself, because
# querytree() drops the `!term` parts (and the exclusion with them). Phrases (<->, <N>), which
# hyphenated words also become, relax to their words like `&` does, so `heat-transfer` still
# finds documents that say "heat" and "transfer" apart, after the ones with the phrase.
# The query is spelled inline (no CTE): its functions are immutable, so the planner folds it to a
# constant and reads the column statistics, choosing a sequential scan that stops after `cap`
# rows for a term in most documents instead of building a bitmap of all of them.
Q_ALL = "websearch_to_tsquery(%(config)s::regconfig, %(query)s)"
Q_ANY = f"""(CASE WHEN {Q_ALL}::text ~ '!' OR querytree({Q_ALL}) = 'T' THEN {Q_ALL}
     ELSE regexp_replace(querytree({Q_ALL}), ' (&|<->|<[0-9]+>) ', ' | ', 'g')::tsquery END)"""
CANDIDATES_SQL = f"""
WITH strict AS (
    -- At most `cap` documents matching every term (GIN index), in no particular order.
    SELECT d.id, d.title, d.language, d.source, d.content_hash, d.search_vector, true AS all_terms
    FROM documents_document d
    WHERE d.collection = %(collection)s
      AND numnode({Q_ALL}) > 0
      AND d.search_vector @@ {Q_ALL}
    LIMIT %(cap)s
), loose AS (
    -- Only when too few match every term: at most `cap` more matching some of them.
    SELECT d.id, d.title, d.language, d.source, d.content_hash, d.search_vector, false AS all_terms
    FROM documents_document d
    WHERE (SELECT count(*) FROM strict) < %(limit)s
      AND {Q_ANY}::text <> {Q_ALL}::text
      AND d.collection = %(collection)s
      AND numnode({Q_ALL}) > 0
      AND d.search_vector @@ {Q_ANY}
      AND NOT d.search_vector @@ {Q_ALL}
    LIMIT %(cap)s
)
SELECT pool.id, pool.title, pool.language, pool.source, pool.content_hash, pool.all_terms,
       ts_rank_cd(pool.search_vector, {Q_ANY}, 32) AS rank
FROM (SELECT * FROM strict UNION ALL SELECT * FROM loose) pool
ORDER BY pool.all_terms DESC, rank DESC, pool.id
LIMIT %(limit)s
"""  # noqa: S608 (built from the constants above; the user's text is a parameter)


@dataclass
class Candidate:
    document_id: int
    title: str
    language: str
    source: str
    rank: float
    all_terms: bool
    content_hash: str = ""  # the document's content version (keys the rerank cache)
    chunks: list[str] = field(default_factory=list)  # texts sent to the reranker
    chunk_ordinals: list[int] = field(default_factory=list)
    snippet: str = ""


@dataclass
class CandidateSet:
    query: str
    terms: QueryTerms
    candidates: list[Candidate]


def candidates(query: str, *, k_initial: int, collection: str = LIBRARY) -> CandidateSet:
    """Return up to `k_initial` candidates with snippets and chunks (two SQL queries)."""
    terms = query_terms(query)
    segmented = segment_query(query)
    with connection.cursor() as cursor:
        cursor.execute(
            CANDIDATES_SQL,
            {
                "config": TS_CONFIG,
                "query": segmented,
                "collection": collection,
                "limit": k_initial,
                "cap": max(settings.SEARCH_RANK_CAP, k_initial),
            },
        )
        rows = cursor.fetchall()
    found = [
        Candidate(
            document_id=r[0],
            title=r[1],
            language=r[2],
            source=r[3],
            content_hash=r[4],
            all_terms=r[5],
            rank=float(r[6]),
        )
        for r in rows
    ]
    _attach_chunks(found, terms)
    return CandidateSet(query=query, terms=terms, candidates=found)


def _attach_chunks(found: list[Candidate], terms: QueryTerms) -> None:
    by_id = {c.document_id: c for c in found}
    chunks: dict[int, list[tuple[int, str]]] = {}
    for document_id, ordinal, text in Chunk.objects.filter(document_id__in=list(by_id)).values_list(
        "document_id", "ordinal", "text"
    ):
        chunks.setdefault(document_id, []).append((ordinal, text))
    for document_id, candidate in by_id.items():
        own = sorted(chunks.get(document_id, []))
        scored = sorted(own, key=lambda item: (-count_matches(item[1], terms), item[0]))
        chosen = sorted({*(ordinal for ordinal, _ in scored[: MAX_CHUNKS_PER_DOCUMENT - 1]), 0} & {o for o, _ in own})
        texts = dict(own)
        candidate.chunk_ordinals = chosen
        candidate.chunks = [texts[o] for o in chosen]
        best_text = scored[0][1] if scored else ""
        candidate.snippet = snippet(best_text, terms)
