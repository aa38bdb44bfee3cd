"""Scoring: a plan's candidates, by one of three strategies, each giving BM25's exact scores.

- exhaustive: one statement scores every posting of every term (all terms rare enough);
- pooled: the best postings of each common term, every posting of the rare ones, and the
  missing weights of the pooled documents looked up (MaxScore proves the top k exact, or says not);
- packed: every posting of the common terms from their packs, scored in numpy
  (search.backends.packed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from search.backends import packed
from search.backends.base import Candidate, CandidateSet
from search.backends.postgres import bounds
from search.backends.postgres.planning import Plan, fetch
from search.backends.postgres.statements import PHRASE_POOL, POOL_FILL, POOL_READ, ROWS


@dataclass
class Pooled:
    """The top k of a pool and what it proves."""

    scores: dict[int, float]  # document id -> score, best first
    exact: bool  # nothing left out of the pool can reach the k-th score
    budget_spent: bool  # the lookups ran out (FILL_LIMIT): the ranking is by what is known


@dataclass
class _Pool:
    """The pooled documents' known weights, and each common term's bound on what it left out."""

    exhaustive: dict[int, bool]  # term id -> read whole, in the query's term order
    known: dict[int, dict[int, float]] = field(default_factory=dict)  # document -> term -> weight
    ceiling: dict[int, float] = field(default_factory=dict)  # common term -> its last pooled weight

    @property
    def commons(self) -> list[int]:
        return [t for t, whole in self.exhaustive.items() if not whole]

    def total(self, pk: int) -> float:
        # Summed in the query's term order, as the exhaustive SQL and the packs sum them.
        weights = self.known[pk]
        return sum(weights[t] for t in self.exhaustive if t in weights)

    def upper(self, pk: int) -> float:
        """Return the most the document can score: its known weights and each missing term's ceiling."""
        missing = [t for t in self.commons if t not in self.known[pk]]
        return self.total(pk) + sum(self.ceiling.get(t, 0.0) for t in missing)


def candidate(row: tuple, score: float) -> Candidate:
    document_id, title, language, source, content_hash = row
    return Candidate(
        document_id=document_id,
        title=title,
        language=language,
        source=source,
        content_hash=content_hash,
        score=float(score),
    )


def _with_rows(best: dict[int, float], plan: Plan, *, exact: bool) -> CandidateSet:
    """Return the candidates of `best` (document id -> score, best first) with their rows (one statement)."""
    rows = {row[0]: row for row in fetch(ROWS, {"ids": list(best)})} if best else {}
    found = [candidate(rows[pk], score) for pk, score in best.items() if pk in rows]
    return _result(found, plan, exact=exact)


def _result(found: list[Candidate], plan: Plan, *, exact: bool = True) -> CandidateSet:
    return CandidateSet(
        candidates=found,
        notices=list(plan.notices),
        exact=exact,
        unknown_terms=plan.unknown_terms,
        stood_in_terms=plan.stood_in_terms,
        known_terms=plan.known_terms,
        expanded_words=list(plan.expanded_words),
    )


def exhaustive(plan: Plan) -> CandidateSet:
    """Return the top k of one statement that scores every posting (SQL: one statement)."""
    return _result([candidate(row[:5], row[5]) for row in fetch(plan.sql, plan.params)], plan)


def of_documents(plan: Plan, ids: list[int]) -> dict[int, float]:
    """Return the BM25 score of each of `ids` that matches the plan's query: the score any
    strategy gives it at any depth (its weights looked up, summed in the query's term order).

    A document with none of the query's terms, or failing its required phrases, exclusions or
    filters, is left out. SQL: the documents' postings of the query's terms (POOL_FILL), and the
    conditions when the query has any.
    """
    if plan.sql is None or not ids:
        return {}
    known: dict[int, dict[int, float]] = {}
    for document_id, term_id, weight in fetch(POOL_FILL, {**plan.params, "ids": list(ids)}):
        known.setdefault(document_id, {})[term_id] = weight
    if plan.conditions and known:
        kept = {row[0] for row in fetch(plan.conditions_sql(), {**plan.params, "ids": list(known)})}
        known = {pk: weights for pk, weights in known.items() if pk in kept}
    order = plan.params["term_ids"]
    return {pk: sum(weights[t] for t in order if t in weights) for pk, weights in known.items()}


def pooled(plan: Plan, *, k: int) -> CandidateSet:
    """Return the top k from the pools, widened once when the first cannot prove it exact."""
    pool_size = settings.SEARCH_COMMON_TERM_POOL
    while True:
        result = pool_top(plan, k=k, pool_size=pool_size)
        # Widen once, unless the lookups already ran out: a wider pool would only need more.
        if result.exact or result.budget_spent or pool_size > settings.SEARCH_COMMON_TERM_POOL:
            break
        pool_size *= bounds.POOL_GROWTH
    return _with_rows(result.scores, plan, exact=result.exact)


def from_packs(plan: Plan, *, k: int) -> CandidateSet:
    """Return the exact top k from every posting of every term, scored in numpy.

    SQL: the postings (one statement), the filters on the best documents when the query has
    phrases, exclusions or a language (a statement per batch, best first), the rows.
    Raises packed.PackMissing when a pack the plan counted on is gone.
    """
    found = packed.scored(packed.read(connection, plan.params), plan.params)
    if not plan.filters:
        return _with_rows(dict(zip(*packed.top(found, k), strict=True)), plan, exact=True)
    best, exact = _filtered_top(found, plan, k=k)
    return _with_rows(best, plan, exact=exact)


def _filtered_top(found: packed.Scored, plan: Plan, *, k: int) -> tuple[dict[int, float], bool]:
    """Return the best k scored documents that pass the plan's filters, checked a batch at a time
    best first, and whether they are exactly the top k (FILTER_LIMIT checked at most)."""
    best: dict[int, float] = {}
    checked, wanted = 0, bounds.FILTER_FIRST_BATCH * k
    sql = plan.filter_sql()
    while len(best) < k:
        if checked >= bounds.FILTER_LIMIT:
            return dict(list(best.items())[:k]), False  # the best FILTER_LIMIT failed: rank what passed
        ids, values = packed.top(found, checked + wanted)
        if len(ids) <= checked:
            break  # every document has been checked
        batch = ids[checked:]
        kept = {row[0] for row in fetch(sql, {**plan.params, "ids": batch})}
        best.update((pk, score) for pk, score in zip(batch, values[checked:], strict=True) if pk in kept)
        checked, wanted = len(ids), wanted * bounds.POOL_GROWTH
    return dict(list(best.items())[:k]), True


def _read_pool(plan: Plan, params: dict) -> _Pool:
    """Return the pool: every posting of the rare terms and the best `pool_size` of each common
    one, the documents of required phrases, then only those passing the filters."""
    pool = _Pool(exhaustive=dict(zip(params["term_ids"], params["exhaustive"], strict=True)))
    read: dict[int, int] = dict.fromkeys(pool.exhaustive, 0)
    last: dict[int, float] = dict.fromkeys(pool.exhaustive, 0.0)
    for document_id, term_id, weight in fetch(POOL_READ, params):
        pool.known.setdefault(document_id, {})[term_id] = weight
        read[term_id] += 1
        last[term_id] = weight
    # A common term read to its end has nothing left out; its documents are all pooled.
    pool.ceiling = {t: last[t] for t in pool.commons if read[t] >= params["pool_size"]}
    for text in plan.phrases:
        for (document_id,) in fetch(PHRASE_POOL, {**params, "phrase": text}):
            pool.known.setdefault(document_id, {})
    if plan.filters and pool.known:
        kept = {row[0] for row in fetch(plan.filter_sql(), {**params, "ids": list(pool.known)})}
        pool.known = {pk: weights for pk, weights in pool.known.items() if pk in kept}
    return pool


def pool_top(plan: Plan, *, k: int, pool_size: int) -> Pooled:
    """Return the top k from the pool, whether the pool proves it exact, and whether the lookup
    budget ran out (FILL_LIMIT: then the ranking is by what is known).

    Score-at-a-time: each pooled document's known weights give its lower bound, and each
    common term it was not pooled for adds at most that term's last pooled weight (its upper
    bound). Only documents whose upper bound reaches the k-th lower bound, and that lack some
    weight, are looked up. A document outside the pool scores at most the sum of the common
    terms' last weights: below the k-th score, the top k is exact.
    """
    params = {**plan.params, "pool_size": pool_size}
    pool = _read_pool(plan, params)
    lower = {pk: pool.total(pk) for pk in pool.known}
    upper = {pk: pool.upper(pk) for pk in pool.known}
    # Highest upper bound first, a batch at a time: each batch raises the k-th exact score,
    # and the documents whose upper bound falls below it need no lookup at all (MaxScore).
    unsure = sorted((pk for pk in pool.known if upper[pk] > lower[pk]), key=lambda pk: (-upper[pk], pk))
    looked_up = 0
    while unsure and looked_up < bounds.FILL_LIMIT:
        kth = sorted(lower.values(), reverse=True)[k - 1] if len(lower) >= k else 0.0
        unsure = [pk for pk in unsure if upper[pk] >= kth]
        batch, unsure = unsure[: bounds.FILL_BATCH], unsure[bounds.FILL_BATCH :]
        if not batch:
            break
        for document_id, term_id, weight in fetch(POOL_FILL, {**params, "ids": batch}):
            pool.known[document_id][term_id] = weight
        for pk in batch:
            lower[pk] = upper[pk] = pool.total(pk)
        looked_up += len(batch)
    best = sorted(lower.items(), key=lambda item: (-item[1], item[0]))[:k]
    # Exact when nothing outside the pool can reach the k-th score and no document that could
    # was left without its lookup (the lookup budget ran out).
    threshold = best[-1][1] if best else 0.0
    outside = sum(pool.ceiling.values())
    exact = len(best) == k and threshold >= outside and not any(upper[pk] > threshold for pk in unsure)
    return Pooled(dict(best), exact, looked_up >= bounds.FILL_LIMIT)
