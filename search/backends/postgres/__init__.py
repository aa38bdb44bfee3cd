"""Okapi BM25 candidates from stock PostgreSQL: postings and statistics kept by triggers.

The backend (PostgresBM25Backend, below) is a thin entry point over one module per job:
planning (the query's terms and strategy), statements (the SQL), scoring (exhaustive, pooled,
packed), vocabulary (suggestions), maintenance (rebuild, packs, background repacks) and bounds
(every tuning number, with its reason).

The index (search.models, search/migrations/0002_bm25_triggers.py) is derived from each
document's stored tsvector in the same statement that writes the document: a posting per
(document, lexeme) with its title and body counts, document lengths, and per-collection totals
and document frequencies. A search then costs two statements:

1. TERMS_SQL: the query's words become lexemes through the same `english` configuration that
   built the vectors (Chinese segmented first, exactly as documents are), with their df and the
   collection's N and average lengths.
2. The candidates: BM25 summed over the query's terms (a disjunction: documents with more and
   rarer terms first), filtered by required phrases and exclusions, best first.

Work is bounded however common the terms are. The rarest terms (while their postings add up to
at most SEARCH_EXHAUSTIVE_POSTINGS) are scored over all their documents. Of each more common
term, only its SEARCH_COMMON_TERM_POOL postings of highest impact join the pool (an index-only
read of the term's postings, best first). Every pooled document is then scored exactly, over all
the query's terms. A document outside the pool contains none of the rare terms, and each common
term weighs at most its pool's last impact in it; when the k-th score found beats that sum of
bounds, the top k is exactly BM25's (MaxScore's argument), otherwise the pool is widened once.

Two or more common terms have no such bound (BM25 saturates: the best documents hold every term
at ordinary counts, deep in each term's postings); one common term beside rare terms of many
documents would need a lookup per rare document. Both are scored over every posting, from the
common terms' packed postings (search.backends.packed: a few byte strings per term, scored
in numpy, with the documents written since the packs read live), exactly.

Scores: score(d) = sum over query terms t in d of idf(t) * weight(t, d), where
  idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))            (Lucene's BM25 idf, never negative)
  weight = search_bm25_weight(...)                        (BM25F over title and body; the SQL)
with k1, b and the title weight from the settings (SEARCH_BM25_*).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import DatabaseError

from search.backends import packed
from search.backends.base import CandidateSet, CandidatesUnavailable, MatchCount, Narrowing
from search.backends.postgres import counting, maintenance, planning, scoring, vocabulary
from search.backends.postgres.planning import Plan, idf
from search.backends.postgres.planning import fetch as _fetch
from search.backends.postgres.statements import POOL_FILL
from search.query import ParsedQuery

__all__ = ["POOL_FILL", "PostgresBM25Backend", "idf"]

logger = logging.getLogger(__name__)


class PostgresBM25Backend:
    """Okapi BM25 over the stored tsvector, with statistics kept exact by triggers."""

    def candidates(
        self,
        query: ParsedQuery,
        *,
        k: int,
        collection: str,
        languages: list[str] | None = None,
        expand: bool = False,
        narrowing: Narrowing | None = None,
    ) -> CandidateSet:
        """Return up to `k` candidates, best BM25 first (SQL: two statements when every term is rare;
        with a common term a few more: the pool, its filters, the missing weights, the rows; with
        `expand`, a few bounded reads of the vocabulary: search.backends.postgres.vocabulary)."""
        if not query:
            return CandidateSet()
        try:
            return self._candidates(
                query, k=k, collection=collection, languages=languages, expand=expand, narrowing=narrowing
            )
        except DatabaseError as error:
            raise CandidatesUnavailable(f"PostgreSQL did not answer the full-text query ({error})") from error

    def _candidates(
        self,
        query: ParsedQuery,
        *,
        k: int,
        collection: str,
        languages: list[str] | None,
        expand: bool,
        narrowing: Narrowing | None = None,
    ) -> CandidateSet:
        plan = planning.plan(query, k=k, collection=collection, languages=languages, expand=expand, narrowing=narrowing)
        if plan.sql is None:
            return CandidateSet(notices=plan.notices, unknown_terms=plan.unknown_terms)
        if plan.packed is not None:
            try:
                return self._from_packs(plan, k=k)
            except packed.PackMissing as error:
                # Packs taken again (or dropped) between the two statements: plan without them.
                logger.info("full-text search without packs: %s", error)
                plan = planning.plan(
                    query,
                    k=k,
                    collection=collection,
                    languages=languages,
                    use_packs=False,
                    expand=expand,
                    narrowing=narrowing,
                )
        if plan.exhaustive:
            return scoring.exhaustive(plan)
        return scoring.pooled(plan, k=k)

    def scores(
        self,
        query: ParsedQuery,
        *,
        ids: list[int],
        collection: str,
        languages: list[str] | None = None,
        expand: bool = False,
        narrowing: Narrowing | None = None,
    ) -> dict[int, float]:
        """Return the BM25 score for `query` of each of `ids` that matches it (the score `candidates`
        would give it, however deep); a document that does not match is left out (SQL: TERMS_SQL,
        then scoring.of_documents' one or two statements)."""
        if not query or not ids:
            return {}
        try:
            found = planning.plan(
                query,
                k=len(ids),
                collection=collection,
                languages=languages,
                use_packs=False,
                expand=expand,
                narrowing=narrowing,
            )
            return scoring.of_documents(found, ids)
        except DatabaseError as error:
            raise CandidatesUnavailable(f"PostgreSQL did not answer the full-text scores ({error})") from error

    def _plan(
        self, query: ParsedQuery, *, k: int, collection: str, languages: list[str] | None = None, use_packs: bool = True
    ) -> Plan:
        """Return the candidate statement for `query` (tests and benchmarks inspect it)."""
        return planning.plan(query, k=k, collection=collection, languages=languages, use_packs=use_packs)

    def count(
        self,
        query: ParsedQuery,
        *,
        collection: str,
        languages: list[str] | None = None,
        narrowing: Narrowing | None = None,
        since: dict[str, datetime] | None = None,
        expand: bool = False,
    ) -> MatchCount:
        """Return how many documents match, and the facets' counts (search.backends.postgres.counting)."""
        if not query:
            return MatchCount()
        try:
            return counting.count(
                query, collection=collection, languages=languages, narrowing=narrowing, since=since or {}, expand=expand
            )
        except DatabaseError as error:
            raise CandidatesUnavailable(f"PostgreSQL did not answer the count ({error})") from error

    def _from_packs(self, plan: Plan, *, k: int) -> CandidateSet:
        return scoring.from_packs(plan, k=k)

    def explain(self, query: ParsedQuery, *, k: int, collection: str) -> str:
        """Return EXPLAIN ANALYZE of the candidate statement for `query` (for benchmarks and tests)."""
        from django.conf import settings

        plan = self._plan(query, k=k, collection=collection)
        if plan.sql is None:
            return "no statement: " + (" ".join(plan.notices) or "the query has no indexed terms")
        params = {**plan.params, "pool_size": settings.SEARCH_COMMON_TERM_POOL}
        rows = _fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + plan.sql, params)
        return "\n".join(row[0] for row in rows)

    def suggest(self, query: ParsedQuery, *, collection: str) -> str | None:
        """Return the query with its unknown or rare words corrected from the library's vocabulary
        (search.backends.postgres.vocabulary), or None."""
        return vocabulary.suggestion(query, collection=collection)

    def index_documents(self, *, changed: list[int], deleted: list[int], collection: str | None) -> None:
        """Take the packs again, in the background, of collections written to SEARCH_PACK_REFRESH
        times since they were taken (the triggers already updated the index itself)."""
        maintenance.packs_due(collection=collection)

    def rebuild(self, *, collection: str | None = None) -> int:
        """Return how many documents were indexed after rebuilding (and repacking) from their vectors."""
        return maintenance.rebuild(collection=collection)

    def pack(self, *, collection: str | None = None, unless_busy: bool = False) -> dict[str, int]:
        """Take the packs of one collection (or all) afresh; return the terms packed per collection."""
        return maintenance.pack(collection=collection, unless_busy=unless_busy)
