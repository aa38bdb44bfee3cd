"""Okapi BM25 candidates from stock PostgreSQL: postings and statistics kept by triggers.

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
import math
import re
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from documents.models import Document
from documents.textsearch import CJK_RUN, TS_CONFIG, has_cjk, segment_for_index, segment_words
from search import suggest
from search.backends import packed
from search.backends.base import Candidate, CandidateSet, CandidatesUnavailable
from search.query import Clause, ParsedQuery

logger = logging.getLogger(__name__)

# The pool of a common term grows this much when the first pool cannot prove the top k exact.
POOL_GROWTH = 4
# Queries of several common terms are scored exhaustively up to this many times
# SEARCH_EXHAUSTIVE_POSTINGS postings (exact, at most ~0.2 s at 1M documents) before pooling.
COMMON_TERMS_FACTOR = 20
# Pooled documents whose missing weights are looked up per statement, and at most per search: the
# lookups are primary-key probes, the cost that grows when common terms rarely meet.
FILL_BATCH = 256
FILL_LIMIT = 4096
# Scored from packs, the best documents checked against the query's filters at most (phrases,
# exclusions, a language), best first: beyond, the ranking is of those that passed.
FILTER_LIMIT = 16384
# What one such lookup costs, in postings read from the term index (measured at 100k documents,
# docs/benchmarks.md section 4): it decides between pooling and reading every posting.
PROBE_COST = 30
# What scoring a posting from a pack costs, in the same unit (measured at 1M documents,
# docs/benchmarks.md section 4): one common term is read from its pack rather than pooled when its
# rare terms' documents would need more lookups than that.
PACK_COST = 0.15
STOP_WORDS_NOTICE = (
    "Every word of your query is too common to search for (such as “the” or “of”); add a more specific word."
)
# Words PostgreSQL's parser reads as something else: text inside <angle brackets> is markup to it.
NO_WORDS_NOTICE = "Nothing in your query can be searched for as words (text in <angle brackets> reads as markup)."
# Whether a query's text holds words at all, stop words included (the `simple` configuration keeps them).
HAS_WORDS_SQL = "SELECT numnode(plainto_tsquery('simple', %(text)s)) > 0"

# Lexemes of each clause (by its position in `texts`) with their statistics in the collection.
# A lexeme the collection lacks comes back with a NULL term; no row at all: no lexemes.
TERMS_SQL = """
WITH lexemes AS (
    SELECT q.ord AS clause, v.lexeme
    FROM unnest(%(texts)s::text[]) WITH ORDINALITY AS q(text, ord)
    CROSS JOIN LATERAL unnest(to_tsvector(%(config)s::regconfig, q.text)) AS v
), stats AS (
    SELECT c.id, c.doc_count, c.title_tokens, c.body_tokens,
           (c.k1, c.b, c.title_weight) = (%(k1)s::float8, %(b)s::float8, %(title_weight)s::float8) AS impacts_current,
           (SELECT count(*) FROM (SELECT 1 FROM search_bm25_change x WHERE x.collection_id = c.id
                                  LIMIT %(changes)s + 1) logged) AS changes
    FROM search_bm25_collection c WHERE c.name = %(collection)s
)
SELECT l.clause, l.lexeme, t.id, t.df, s.doc_count, s.title_tokens, s.body_tokens,
       s.id, s.changes, s.impacts_current, k.term_id IS NOT NULL AS packed
FROM lexemes l
LEFT JOIN stats s ON true
LEFT JOIN search_bm25_term t ON t.collection_id = s.id AND t.lexeme = l.lexeme AND t.df > 0
LEFT JOIN search_bm25_pack k ON k.term_id = t.id
ORDER BY l.clause, l.lexeme
"""
# Collections (this one, or any when None) whose packs have SEARCH_PACK_REFRESH writes logged since.
PACKS_DUE_SQL = """
SELECT c.name FROM search_bm25_collection c
WHERE (%(name)s::text IS NULL OR c.name = %(name)s::text)
  AND EXISTS (SELECT 1 FROM search_bm25_pack k WHERE k.collection_id = c.id)
  AND (SELECT count(*) FROM (SELECT 1 FROM search_bm25_change x WHERE x.collection_id = c.id
                             LIMIT %(refresh)s) logged) >= %(refresh)s
"""
# Whether no other session is taking this collection's packs (the lock search_bm25_pack takes).
PACK_FREE_SQL = """
SELECT pg_try_advisory_xact_lock(2512, c.id::integer) FROM search_bm25_collection c WHERE c.name = %(name)s
"""
# Take the packs of one collection afresh (search/migrations/0003_packed_postings.py).
PACK_SQL = "SELECT search_bm25_pack(%(name)s, %(min_df)s)"
DROP_PACKS_SQL = (
    "DELETE FROM search_bm25_pack k USING search_bm25_collection c WHERE k.collection_id = c.id AND c.name = %(name)s"
)

WEIGHT = (
    "search_bm25_weight(p.tf_title, p.tf_body, p.title_tokens, p.body_tokens, "
    "%(avg_title)s, %(avg_body)s, %(k1)s, %(b)s, %(title_weight)s)"
)
QUERY_TERMS = """q AS (
    SELECT * FROM unnest(%(term_ids)s::bigint[], %(idfs)s::float8[], %(exhaustive)s::bool[])
        WITH ORDINALITY AS q(term_id, idf, exhaustive, position)
)"""
# A term's postings, read from the term-impact index (index-only). The query's terms arrive as an
# array the planner cannot see into; reading per term (OFFSET 0 keeps the subquery apart) is what
# stops it from scanning every posting of every collection instead.
TERM_POSTINGS = "CROSS JOIN LATERAL (SELECT * FROM search_bm25_posting x WHERE x.term_id = q.term_id OFFSET 0) p"
# Every term rare enough to score exhaustively: the scores come straight from its postings.
# A document's weights are summed in the order of the query's terms (ORDER BY q.position), as
# packed.scored sums them: floating-point addition is not associative, and without the order the
# sum followed the plan (a sorted aggregate meets a document's terms in any order), so the same
# query could score a document one bit apart from one database to the next.
SCORE_EXHAUSTIVE = f"""scored AS (
    SELECT p.document_id, sum(q.idf * {WEIGHT} ORDER BY q.position) AS score
    FROM q {TERM_POSTINGS}
    GROUP BY p.document_id
)"""  # noqa: S608 (constants only; values are parameters)
CANDIDATES = """
WITH {query_terms}, {scoring}, ranked AS (
    SELECT s.document_id, s.score FROM scored s {join_document}
    WHERE {filters}
    ORDER BY s.score DESC, s.document_id
    LIMIT %(limit)s
)
SELECT d.id, d.title, d.language, d.source, d.content_hash, r.score
FROM ranked r JOIN documents_document d ON d.id = r.document_id
ORDER BY r.score DESC, r.document_id
"""
# Some term too common. The pool: every posting of the rare terms, the best postings of each common
# one, each with its weight (one index-only read per term, best impact first).
POOL_READ = f"""
WITH {QUERY_TERMS}
SELECT p.document_id, q.term_id, q.idf * {WEIGHT}
FROM q CROSS JOIN LATERAL (
    SELECT * FROM search_bm25_posting x WHERE x.term_id = q.term_id
    ORDER BY x.impact DESC LIMIT CASE WHEN q.exhaustive THEN NULL ELSE %(pool_size)s END
) p
"""  # noqa: S608 (constants only; values are parameters)
# The weights a pooled document's score still lacks: primary-key lookups of only those documents.
# Per document (LATERAL, OFFSET 0): given both arrays at once, the planner reads every posting of
# a common term from the term index and filters them by document (35 ms at 1M documents, for 24
# documents; docs/benchmarks.md section 4).
POOL_FILL = f"""
WITH {QUERY_TERMS}
SELECT p.document_id, q.term_id, q.idf * {WEIGHT}
FROM unnest(%(ids)s::bigint[]) AS i(document_id)
CROSS JOIN LATERAL (
    SELECT * FROM search_bm25_posting x
    WHERE x.document_id = i.document_id AND x.term_id = ANY(%(term_ids)s::bigint[]) OFFSET 0
) p
JOIN q ON q.term_id = p.term_id
"""  # noqa: S608 (constants only; values are parameters)
# A required phrase of common words: its documents join the pool from the GIN index, so they are
# scored even when none of them is among its words' best postings.
PHRASE_POOL = """
SELECT d.id FROM documents_document d
WHERE d.collection = %(collection)s AND d.search_vector @@ phraseto_tsquery(%(config)s::regconfig, %(phrase)s)
LIMIT %(pool_size)s
"""
# Which pooled documents pass the query's required phrases and exclusions.
POOL_FILTER = """
SELECT s.document_id FROM unnest(%(ids)s::bigint[]) AS s(document_id) {join_document} WHERE {filters}
"""
JOIN_DOCUMENT = "JOIN documents_document d ON d.id = s.document_id"
ROWS = "SELECT id, title, language, source, content_hash FROM documents_document WHERE id = ANY(%(ids)s::bigint[])"
# Filters on a scored document (`s`), and on its row (`d`) when phrases must be checked.
HAS_TERM = "EXISTS (SELECT 1 FROM search_bm25_posting x WHERE x.document_id = s.document_id AND x.term_id = ANY({}))"
HAS_PHRASE = "d.search_vector @@ phraseto_tsquery(%(config)s::regconfig, {})"
IN_LANGUAGES = "d.language = ANY(%(languages)s::text[])"
# Chinese has no spaces between words and documents are segmented into overlapping sub-words, so a
# Chinese (or mixed) phrase is required as the text itself.
HAS_TEXT = "strpos(lower(d.title || ' ' || d.body), lower({})) > 0"


# "Did you mean": the vocabulary near one word. English lexemes are stems, so the neighbours are
# stems of similar length sharing the first letter; Chinese words are themselves, so neighbours
# have the same length and share the first or the last character.
NEAR_STEMS_SQL = """
SELECT t.lexeme, t.df FROM search_bm25_term t JOIN search_bm25_collection c ON c.id = t.collection_id
WHERE c.name = %(collection)s AND t.df > 0 AND t.lexeme >= %(low)s AND t.lexeme < %(high)s
  AND length(t.lexeme) BETWEEN %(shortest)s AND %(longest)s
ORDER BY t.df DESC LIMIT %(limit)s
"""
NEAR_CJK_SQL = """
SELECT t.lexeme, t.df FROM search_bm25_term t JOIN search_bm25_collection c ON c.id = t.collection_id
WHERE c.name = %(collection)s AND t.df > 0 AND length(t.lexeme) = %(length)s
  AND (left(t.lexeme, 1) = %(first)s OR right(t.lexeme, 1) = %(last)s)
ORDER BY t.df DESC LIMIT %(limit)s
"""
# The words of one document containing a stem: where the stem's spelling in the library is found.
SURFACE_SQL = """
SELECT d.title || ' ' || left(d.body, 20000) FROM search_bm25_posting p
JOIN search_bm25_term t ON t.id = p.term_id
JOIN search_bm25_collection c ON c.id = t.collection_id
JOIN documents_document d ON d.id = p.document_id
WHERE c.name = %(collection)s AND t.lexeme = %(lexeme)s
ORDER BY p.impact DESC LIMIT 1
"""
# Neighbours read per word at most (the most common first): bounds the work of a suggestion.
NEAR_LIMIT = 5000
ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")


@dataclass
class _Clause:
    """A clause of the query with what the index knows of it."""

    clause: Clause
    lexemes: list[str] = field(default_factory=list)
    terms: dict[int, int] = field(default_factory=dict)  # term id -> df
    packed: set[int] = field(default_factory=set)  # term ids with a pack (search.models.Bm25Pack)


def _candidate(row: tuple, score: float) -> Candidate:
    document_id, title, language, source, content_hash = row
    return Candidate(
        document_id=document_id,
        title=title,
        language=language,
        source=source,
        content_hash=content_hash,
        score=float(score),
    )


@dataclass
class _Plan:
    """The candidate statement for one query, or why there is none."""

    sql: str | None = None  # the one statement when every term is read whole, else the pool read
    params: dict = field(default_factory=dict)
    exhaustive: bool = True  # every term's documents are all scored: the top k is exact
    notices: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)  # conditions on `s` (and `d` when needs_row)
    needs_row: bool = False
    phrases: list[str] = field(default_factory=list)  # required phrases of common words (GIN pool)
    packed: list[int] | None = None  # scored in numpy: the terms read from packs (search.backends.packed)
    unknown_terms: int = 0  # lexemes of the query the collection lacks
    known_terms: int = 0  # lexemes of the query the collection has

    def filter_sql(self) -> str:
        """Return the statement that keeps the scored documents (`ids`) passing the filters."""
        join_document = JOIN_DOCUMENT if self.needs_row else ""
        return POOL_FILTER.format(join_document=join_document, filters=" AND ".join(self.filters))


@dataclass
class _Statistics:
    documents: int = 0
    avg_title: float = 0.0
    avg_body: float = 0.0
    collection_id: int | None = None
    changes: int = 0  # documents written since the packs were taken (counted up to the limit + 1)
    impacts_current: bool = True  # the postings' impacts were computed with the SEARCH_BM25_* settings


# Collections whose packs a thread of this process is taking again.
_repacking: set[str] = set()
_repacking_lock = threading.Lock()


def _repack_in_background(backend: PostgresBM25Backend, name: str) -> None:
    """Take one collection's packs again in a thread of this process (one at a time per collection;
    across processes, the advisory lock lets one of them do it). Searches meanwhile read the
    documents written since the old packs live, exactly as before."""
    with _repacking_lock:
        if name in _repacking:
            return
        _repacking.add(name)

    def repack() -> None:
        started = time.perf_counter()
        try:
            packed_terms = backend.pack(collection=name, unless_busy=True)
            if name in packed_terms:
                logger.info(
                    "packs of %s taken again: %d terms in %.1f s",
                    name,
                    packed_terms[name],
                    time.perf_counter() - started,
                )
        except Exception:  # a failed repack leaves the old packs, still exact: log it, never raise
            logger.exception("packs of %s could not be taken again", name)
        finally:
            connection.close()  # this thread's own connection
            with _repacking_lock:
                _repacking.discard(name)

    # Not a daemon: a command that imported documents (or a worker shutting down) waits for the
    # packs rather than leaving them half taken and rolled back.
    threading.Thread(target=repack, name=f"repack-{name}", daemon=False).start()


def _pooled_cost(ordered: list[tuple[int, int]], exhaustive: list[bool]) -> float:
    """Return what pooling costs, in postings read: the rare terms whole, a pool of each common
    term, and a lookup of the common terms' weights in each rare term's document."""
    rare = sum(df for (_, df), whole in zip(ordered, exhaustive, strict=True) if whole)
    commons = exhaustive.count(False)
    return rare + settings.SEARCH_COMMON_TERM_POOL * commons + PROBE_COST * min(FILL_LIMIT, rare)


def idf(df: int, documents: int) -> float:
    """Return Lucene's BM25 idf: ln(1 + (N - df + 0.5) / (df + 0.5))."""
    return math.log(1 + (documents - df + 0.5) / (df + 0.5))


class PostgresBM25Backend:
    """Okapi BM25 over the stored tsvector, with statistics kept exact by triggers."""

    def candidates(
        self, query: ParsedQuery, *, k: int, collection: str, languages: list[str] | None = None
    ) -> CandidateSet:
        """Return up to `k` candidates, best BM25 first (SQL: two statements when every term is rare;
        with a common term a few more: the pool, its filters, the missing weights, the rows)."""
        if not query:
            return CandidateSet()
        try:
            return self._candidates(query, k=k, collection=collection, languages=languages)
        except DatabaseError as error:
            raise CandidatesUnavailable(f"PostgreSQL did not answer the full-text query ({error})") from error

    def _candidates(self, query: ParsedQuery, *, k: int, collection: str, languages: list[str] | None) -> CandidateSet:
        plan = self._plan(query, k=k, collection=collection, languages=languages)
        if plan.sql is None:
            return CandidateSet(notices=plan.notices, unknown_terms=plan.unknown_terms)
        if plan.packed is not None:
            try:
                return self._from_packs(plan, k=k)
            except packed.PackMissing as error:
                # Packs taken again (or dropped) between the two statements: plan without them.
                logger.info("full-text search without packs: %s", error)
                plan = self._plan(query, k=k, collection=collection, languages=languages, use_packs=False)
        if plan.exhaustive:
            rows = self._fetch(plan.sql, plan.params)
            found = [_candidate(row[:5], row[5]) for row in rows]
            return CandidateSet(candidates=found, unknown_terms=plan.unknown_terms, known_terms=plan.known_terms)
        pool_size = settings.SEARCH_COMMON_TERM_POOL
        while True:
            scores, exact, spent = self._pooled(plan, k=k, pool_size=pool_size)
            # Widen once, unless the lookups already ran out: a wider pool would only need more.
            if exact or spent or pool_size > settings.SEARCH_COMMON_TERM_POOL:
                break
            pool_size *= POOL_GROWTH
        rows = {row[0]: row for row in self._fetch(ROWS, {"ids": list(scores)})} if scores else {}
        found = [_candidate(rows[pk], score) for pk, score in scores.items() if pk in rows]
        return CandidateSet(
            candidates=found, exact=exact, unknown_terms=plan.unknown_terms, known_terms=plan.known_terms
        )

    def _from_packs(self, plan: _Plan, *, k: int) -> CandidateSet:
        """Return the exact top k from every posting of every term, scored in numpy.

        SQL: the postings (one statement), the filters on the best documents when the query has
        phrases, exclusions or a language (a statement per batch, best first), the rows.
        """
        postings = packed.read(connection, plan.params)
        scored = packed.scored(postings, plan.params)
        exact = True
        if not plan.filters:
            best = dict(zip(*packed.top(scored, k), strict=True))
        else:
            best, checked, wanted = {}, 0, 4 * k
            sql = plan.filter_sql()
            while len(best) < k:
                if checked >= FILTER_LIMIT:
                    exact = False  # the best FILTER_LIMIT all failed the filters: rank what passed
                    break
                ids, values = packed.top(scored, checked + wanted)
                if len(ids) <= checked:
                    break  # every document has been checked
                batch = ids[checked:]
                kept = {row[0] for row in self._fetch(sql, {**plan.params, "ids": batch})}
                best.update((pk, score) for pk, score in zip(batch, values[checked:], strict=True) if pk in kept)
                checked, wanted = len(ids), wanted * POOL_GROWTH
            best = dict(list(best.items())[:k])
        rows = {row[0]: row for row in self._fetch(ROWS, {"ids": list(best)})} if best else {}
        found = [_candidate(rows[pk], score) for pk, score in best.items() if pk in rows]
        return CandidateSet(
            candidates=found, exact=exact, unknown_terms=plan.unknown_terms, known_terms=plan.known_terms
        )

    def _pooled(self, plan: _Plan, *, k: int, pool_size: int) -> tuple[dict[int, float], bool, bool]:
        """Return the top k {document: score} from the pool, whether the pool proves it exact, and
        whether the lookup budget ran out (FILL_LIMIT: then the ranking is by what is known).

        Score-at-a-time: each pooled document's known weights give its lower bound, and each
        common term it was not pooled for adds at most that term's last pooled weight (its upper
        bound). Only documents whose upper bound reaches the k-th lower bound, and that lack some
        weight, are looked up. A document outside the pool scores at most the sum of the common
        terms' last weights: below the k-th score, the top k is exact.
        """
        params = {**plan.params, "pool_size": pool_size}
        exhaustive = dict(zip(params["term_ids"], params["exhaustive"], strict=True))
        known: dict[int, dict[int, float]] = {}
        read: dict[int, int] = dict.fromkeys(exhaustive, 0)
        last: dict[int, float] = dict.fromkeys(exhaustive, 0.0)
        for document_id, term_id, weight in self._fetch(POOL_READ, params):
            known.setdefault(document_id, {})[term_id] = weight
            read[term_id] += 1
            last[term_id] = weight
        # A common term read to its end has nothing left out; its documents are all pooled.
        ceiling = {t: last[t] for t, whole in exhaustive.items() if not whole and read[t] >= pool_size}
        for text in plan.phrases:
            for (document_id,) in self._fetch(PHRASE_POOL, {**params, "phrase": text}):
                known.setdefault(document_id, {})
        if plan.filters and known:
            sql = plan.filter_sql()
            kept = {row[0] for row in self._fetch(sql, {**params, "ids": list(known)})}
            known = {pk: weights for pk, weights in known.items() if pk in kept}
        commons = [t for t, whole in exhaustive.items() if not whole]

        def missing(pk: int) -> list[int]:
            return [t for t in commons if t not in known[pk]]

        def total(weights: dict[int, float]) -> float:
            # Summed in the query's term order, as the exhaustive SQL and the packs sum them.
            return sum(weights[t] for t in exhaustive if t in weights)

        lower = {pk: total(weights) for pk, weights in known.items()}
        upper = {pk: lower[pk] + sum(ceiling.get(t, 0.0) for t in missing(pk)) for pk in known}
        # Highest upper bound first, a batch at a time: each batch raises the k-th exact score,
        # and the documents whose upper bound falls below it need no lookup at all (MaxScore).
        unsure = sorted((pk for pk in known if upper[pk] > lower[pk]), key=lambda pk: (-upper[pk], pk))
        looked_up = 0
        while unsure and looked_up < FILL_LIMIT:
            kth = sorted(lower.values(), reverse=True)[k - 1] if len(lower) >= k else 0.0
            unsure = [pk for pk in unsure if upper[pk] >= kth]
            batch, unsure = unsure[:FILL_BATCH], unsure[FILL_BATCH:]
            if not batch:
                break
            for document_id, term_id, weight in self._fetch(POOL_FILL, {**params, "ids": batch}):
                known[document_id][term_id] = weight
            for pk in batch:
                lower[pk] = upper[pk] = total(known[pk])
            looked_up += len(batch)
        best = sorted(lower.items(), key=lambda item: (-item[1], item[0]))[:k]
        outside = sum(ceiling.values())
        # Exact when nothing outside the pool can reach the k-th score and no document that could
        # was left without its lookup (the lookup budget ran out).
        threshold = best[-1][1] if best else 0.0
        exact = len(best) == k and threshold >= outside and not any(upper[pk] > threshold for pk in unsure)
        return dict(best), exact, looked_up >= FILL_LIMIT

    def explain(self, query: ParsedQuery, *, k: int, collection: str) -> str:
        """Return EXPLAIN ANALYZE of the candidate statement for `query` (for benchmarks and tests)."""
        plan = self._plan(query, k=k, collection=collection)
        if plan.sql is None:
            return "no statement: " + (" ".join(plan.notices) or "the query has no indexed terms")
        params = {**plan.params, "pool_size": settings.SEARCH_COMMON_TERM_POOL}
        rows = self._fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + plan.sql, params)
        return "\n".join(row[0] for row in rows)

    def _plan(
        self,
        query: ParsedQuery,
        *,
        k: int,
        collection: str,
        languages: list[str] | None = None,
        use_packs: bool = True,
    ) -> _Plan:
        """Return the candidate statement for `query` with its parameters (SQL: TERMS_SQL)."""
        clauses = [*query.scored, *query.excluded]
        resolved, stats = self._resolve(clauses, collection)
        scored = resolved[: len(query.scored)]
        excluded = resolved[len(query.scored) :]
        if not any(item.lexemes for item in scored):
            if any(any(ch.isalnum() for ch in item.clause.text) for item in scored):
                text = " ".join(segment_for_index(item.clause.text) for item in scored)
                # Only markup hides words from the parser: a query without "<" needs no second look.
                if "<" in text and not self._fetch(HAS_WORDS_SQL, {"text": text})[0][0]:
                    return _Plan(notices=[NO_WORDS_NOTICE])
                return _Plan(notices=[STOP_WORDS_NOTICE])
            return _Plan()
        terms = {term_id: df for item in scored for term_id, df in item.terms.items()}
        unknown = sum(1 for item in scored for _ in range(len(item.lexemes) - len(item.terms)))
        if not terms or not stats.documents:
            return _Plan(unknown_terms=unknown)
        known = len(terms)
        by_clause = {id(item.clause): item for item in scored}
        params, filters, needs_row = self._filters(
            [[by_clause[id(member)] for member in group] for group in query.required], excluded
        )
        if filters is None:
            return _Plan()  # a required group that nothing can satisfy
        if languages:
            params["languages"] = list(languages)
            filters.append(IN_LANGUAGES)
            needs_row = True
        # Rarest first: they are scored exhaustively while their postings stay within the budget.
        # A term with no more documents than a common term's pool is read whole either way.
        ordered = sorted(terms.items(), key=lambda item: (item[1], item[0]))
        exhaustive, spent = [], 0
        for _, df in ordered:
            spent += df
            exhaustive.append(spent <= settings.SEARCH_EXHAUSTIVE_POSTINGS or df <= settings.SEARCH_COMMON_TERM_POOL)
        packs = self._usable_packs(scored, ordered, exhaustive, stats) if use_packs else None
        # Pools follow the postings' impacts; computed with other parameters than the settings'
        # (changed since the last reindex_documents), they no longer bound what a pool leaves out.
        if packs is None and (not stats.impacts_current or self._read_whole(ordered, exhaustive)):
            exhaustive = [True] * len(exhaustive)
        params.update(
            term_ids=[term_id for term_id, _ in ordered],
            idfs=[idf(df, stats.documents) for _, df in ordered],
            exhaustive=exhaustive,
            avg_title=stats.avg_title,
            avg_body=stats.avg_body,
            k1=settings.SEARCH_BM25_K1,
            b=settings.SEARCH_BM25_B,
            title_weight=settings.SEARCH_BM25_TITLE_WEIGHT,
            config=TS_CONFIG,
            collection=collection,
            limit=k,
        )
        if packs is not None:
            params.update(
                collection_id=stats.collection_id,
                packed=packs,
                unpacked=[term_id for term_id, _ in ordered if term_id not in packs],
            )
            return _Plan(
                sql=packed.PACK_READ,
                params=params,
                exhaustive=False,
                filters=filters,
                needs_row=needs_row,
                packed=packs,
                unknown_terms=unknown,
                known_terms=known,
            )
        if all(exhaustive):
            sql = CANDIDATES.format(
                query_terms=QUERY_TERMS,
                scoring=SCORE_EXHAUSTIVE,
                join_document=JOIN_DOCUMENT if needs_row else "",
                filters=" AND ".join(filters) or "true",
            )
            return _Plan(sql=sql, params=params, unknown_terms=unknown, known_terms=known)
        phrases = [
            member.text for group in query.required for member in group if member.phrase and not has_cjk(member.text)
        ]
        return _Plan(
            sql=POOL_READ,
            params=params,
            exhaustive=False,
            filters=filters,
            needs_row=needs_row,
            phrases=phrases,
            unknown_terms=unknown,
            known_terms=known,
        )

    @staticmethod
    def _usable_packs(
        scored: list[_Clause], ordered: list[tuple[int, int]], exhaustive: list[bool], stats: _Statistics
    ) -> list[int] | None:
        """Return the query's packed terms when scoring from packs is the plan, else None.

        Packs serve two or more common terms (where pooling cannot bound the work and every
        posting must be scored), and one common term whose pool would need more lookups of
        the rare terms' documents than reading its pack costs (PACK_COST), when every common
        term has a pack and the documents written since the packs were taken are few enough to
        read live (SEARCH_PACK_CHANGES).
        """
        commons = exhaustive.count(False)
        if not commons or stats.changes > settings.SEARCH_PACK_CHANGES:
            return None
        packs = {term_id for item in scored for term_id in item.packed}
        if any(term_id not in packs for (term_id, _), whole in zip(ordered, exhaustive, strict=True) if not whole):
            return None
        pool_cheaper = PACK_COST * sum(df for _, df in ordered) >= _pooled_cost(ordered, exhaustive)
        if commons == 1 and stats.impacts_current and pool_cheaper:
            return None  # one common term beside few rare documents: its pool is cheaper
        return [term_id for term_id, _ in ordered if term_id in packs]

    @staticmethod
    def _read_whole(ordered: list[tuple[int, int]], exhaustive: list[bool]) -> bool:
        """Return whether scoring every posting of every term beats pooling the common ones.

        Two or more common terms: BM25 saturates, so the best documents are those with all of them
        at ordinary counts, which no single term's best postings hold (docs/benchmarks.md,
        section 4); they are read whole up to a hard cap. Otherwise the cheaper plan wins: reading
        a posting costs 1, looking up a pooled document's missing weight PROBE_COST.
        """
        total = sum(df for _, df in ordered)
        commons = exhaustive.count(False)
        if commons >= 2:
            return total <= settings.SEARCH_EXHAUSTIVE_POSTINGS * COMMON_TERMS_FACTOR
        return total <= _pooled_cost(ordered, exhaustive)

    def _resolve(self, clauses: list[Clause], collection: str) -> tuple[list[_Clause], _Statistics]:
        """Return each clause's lexemes and terms, and the collection's statistics (one statement)."""
        resolved = [_Clause(clause=clause) for clause in clauses]
        stats = _Statistics()
        texts = [segment_for_index(clause.text) for clause in clauses]
        params = {
            "texts": texts,
            "config": TS_CONFIG,
            "collection": collection,
            "changes": settings.SEARCH_PACK_CHANGES,
            "k1": settings.SEARCH_BM25_K1,
            "b": settings.SEARCH_BM25_B,
            "title_weight": settings.SEARCH_BM25_TITLE_WEIGHT,
        }
        for row in self._fetch(TERMS_SQL, params):
            position, lexeme, term_id, df, documents, title_tokens, body_tokens, collection_id, changes = row[:9]
            impacts_current, packed = row[9:]
            item = resolved[position - 1]
            item.lexemes.append(lexeme)
            if term_id is not None:
                item.terms[term_id] = df
                if packed:
                    item.packed.add(term_id)
            if documents:
                averages = title_tokens / documents, body_tokens / documents
                stats = _Statistics(documents, *averages, collection_id, changes, impacts_current)
        return resolved, stats

    def _filters(self, groups: list[list[_Clause]], excluded: list[_Clause]) -> tuple[dict, list[str] | None, bool]:
        """Return SQL conditions (and their parameters) for required groups and exclusions.

        None instead of the conditions: a required group that no document can satisfy.
        """
        params: dict[str, object] = {}
        conditions: list[str] = []
        needs_row = False

        def bind(value: object) -> str:
            name = f"f{len(params)}"
            params[name] = value
            return f"%({name})s"

        for group in groups:
            if any(member.clause.phrase and not member.lexemes for member in group):
                continue  # a phrase of stop words only cannot be checked: the group is not required
            alternatives = []
            for member in group:
                if member.clause.phrase:
                    needs_row = True
                    template = HAS_TEXT if has_cjk(member.clause.text) else HAS_PHRASE
                    alternatives.append(template.format(bind(member.clause.text)))
                elif member.terms:
                    alternatives.append(HAS_TERM.format(bind(list(member.terms)) + "::bigint[]"))
            if not alternatives:
                return params, None, needs_row
            conditions.append("(" + " OR ".join(alternatives) + ")")
        for item in excluded:
            if not item.lexemes:
                continue  # an excluded stop word: nothing to exclude
            if has_cjk(item.clause.text):
                needs_row = True
                conditions.append("NOT " + HAS_TEXT.format(bind(item.clause.text)))
            elif item.clause.phrase or len(item.lexemes) > 1:
                needs_row = True
                conditions.append("NOT " + HAS_PHRASE.format(bind(item.clause.text)))
            elif item.terms:
                conditions.append("NOT " + HAS_TERM.format(bind(list(item.terms)) + "::bigint[]"))
        return params, conditions, needs_row

    @staticmethod
    def _fetch(sql: str, params: dict) -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def suggest(self, query: ParsedQuery, *, collection: str) -> str | None:
        """Return the query with its unknown or rare words corrected from the library's vocabulary,
        or None when nothing is worth suggesting (SQL: a few statements per word, only for words
        the library lacks or barely has)."""
        words = self._words(query)
        if not words:
            return None
        try:
            resolved, _ = self._resolve([Clause(text=word) for word in words], collection)
            corrections = {}
            for word, item in zip(words, resolved, strict=True):
                correction = self._correct(word, item, collection)
                if correction:
                    corrections[word] = correction
        except DatabaseError:
            logger.warning("no suggestion: the vocabulary could not be read")
            return None
        if not corrections:
            return None
        text = query.text
        for word, correction in corrections.items():
            if has_cjk(word):  # no spaces between Chinese words: replace the text itself
                text = text.replace(word, correction, 1)
            else:
                text = re.sub(rf"(?<![\w-]){re.escape(word)}(?!\w)", correction, text, count=1)
        return text if text != query.text else None

    @staticmethod
    def _words(query: ParsedQuery) -> list[str]:
        """Return the plain words of a query worth correcting: English words and Chinese words."""
        words: list[str] = []
        for clause in query.scored:
            if clause.phrase:
                continue
            words.extend(ENGLISH_WORD.findall(clause.text))
            for run in CJK_RUN.findall(clause.text):
                words.extend(word for word in segment_words(run) if len(word) >= 2)
        return list(dict.fromkeys(words))

    def _correct(self, word: str, item: _Clause, collection: str) -> str | None:
        if len(item.lexemes) != 1:
            return None  # a stop word, or a word the index splits: nothing one edit away
        lexeme = item.lexemes[0]
        df = next(iter(item.terms.values()), 0)
        if has_cjk(word):
            rows = self._fetch(
                NEAR_CJK_SQL,
                {
                    "collection": collection,
                    "length": len(lexeme),
                    "first": lexeme[0],
                    "last": lexeme[-1],
                    "limit": NEAR_LIMIT,
                },
            )
            found = suggest.corrections(lexeme, df, rows, best=1)
            return found[0] if found else None
        edits = suggest.max_edits(lexeme)
        rows = self._fetch(
            NEAR_STEMS_SQL,
            {
                "collection": collection,
                "low": lexeme[0],
                "high": chr(ord(lexeme[0]) + 1),
                "shortest": len(lexeme) - edits,
                "longest": len(lexeme) + edits,
                "limit": NEAR_LIMIT,
            },
        )
        # Stems are compared first (cheap, one per vocabulary word); the few closest are then
        # spelled as the library spells them, and the spelling closest to what was typed wins.
        spelled = []
        for rank, stem in enumerate(suggest.corrections(lexeme, df, rows)):
            for form in self._spellings(stem, collection):
                spelled.append((suggest.edit_distance(word.lower(), form, limit=99), rank, form))
        return min(spelled)[2] if spelled else None

    def _spellings(self, stem: str, collection: str) -> set[str]:
        """Return how the library spells words with this stem (one statement: one document's words)."""
        from search.highlight import stem as english_stem

        rows = self._fetch(SURFACE_SQL, {"collection": collection, "lexeme": stem})
        if not rows:
            return set()
        return {word.lower() for word in ENGLISH_WORD.findall(rows[0][0]) if english_stem(word) == stem}

    def index_documents(self, *, changed: list[int], deleted: list[int], collection: str | None) -> None:
        """Take the packs again, in the background, of collections written to SEARCH_PACK_REFRESH
        times since they were taken (the triggers already updated the index itself).

        SQL: one statement, only for collections that have packs.
        """
        if not settings.SEARCH_PACK_REFRESH:
            return
        params = {"name": collection, "refresh": settings.SEARCH_PACK_REFRESH}
        for (name,) in self._fetch(PACKS_DUE_SQL, params):
            _repack_in_background(self, name)

    def rebuild(self, *, collection: str | None = None) -> int:
        """Return how many documents were indexed after rebuilding from their stored vectors.

        Also stores the current SEARCH_BM25_* parameters as the collection's impact parameters.
        One transaction per collection (SQL: a few statements over every posting of it).
        """
        total = 0
        for name in self._collections(collection):
            with transaction.atomic():
                # The rebuild gives the terms new ids: the packs of the old ones go first.
                with connection.cursor() as cursor:
                    cursor.execute(DROP_PACKS_SQL, {"name": name})
                rows = self._fetch(
                    "SELECT search_bm25_rebuild(%(name)s, %(k1)s, %(b)s, %(title_weight)s)",
                    {
                        "name": name,
                        "k1": settings.SEARCH_BM25_K1,
                        "b": settings.SEARCH_BM25_B,
                        "title_weight": settings.SEARCH_BM25_TITLE_WEIGHT,
                    },
                )
            total += rows[0][0] or 0
            self.pack(collection=name)
        return total

    def pack(self, *, collection: str | None = None, unless_busy: bool = False) -> dict[str, int]:
        """Take the packs of one collection (or all) afresh; return the terms packed per collection.

        One transaction per collection (SQL: every posting of its terms in at least
        SEARCH_PACK_MIN_DF documents, read once). Writers are not held up meanwhile. With
        `unless_busy`, a collection another session is packing right now is left to it.
        """
        packed_terms = {}
        for name in self._collections(collection):
            with transaction.atomic():
                if unless_busy and not all(row[0] for row in self._fetch(PACK_FREE_SQL, {"name": name})):
                    continue
                with connection.cursor() as cursor:
                    # Maintenance, not a search: a minute at 1M documents, whatever limit searches have.
                    cursor.execute("SET LOCAL statement_timeout = 0")
                rows = self._fetch(PACK_SQL, {"name": name, "min_df": settings.SEARCH_PACK_MIN_DF})
            packed_terms[name] = rows[0][0] or 0
        return packed_terms

    @staticmethod
    def _collections(collection: str | None) -> list[str]:
        if collection:
            return [collection]
        return sorted(set(Document.objects.values_list("collection", flat=True).distinct()))
