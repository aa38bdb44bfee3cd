"""Planning: a parsed query becomes its terms, their statistics, filters and one scoring strategy.

One statement (TERMS_SQL) resolves the query's words to the collection's terms; the rest is
arithmetic on what it returns: which terms are rare enough to score over every posting, whether
several common terms are scored from packs, and which conditions (required phrases, exclusions,
languages) a scored document must pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.conf import settings

from documents.textsearch import TS_CONFIG, has_cjk, segment_for_index
from search.backends import packed
from search.backends.base import Narrowing
from search.backends.postgres import bounds, vocabulary
from search.backends.postgres.statements import (
    ADDED_SINCE,
    CANDIDATES,
    HAS_PHRASE,
    HAS_TERM,
    HAS_TEXT,
    HAS_WORDS_SQL,
    IN_LANGUAGES,
    JOIN_DOCUMENT,
    OF_SOURCE,
    POOL_FILTER,
    POOL_READ,
    QUERY_TERMS,
    SCORE_EXHAUSTIVE,
)
from search.backends.postgres.terms import ResolvedClause, Statistics, fetch, resolve
from search.query import ParsedQuery

# Re-exported: the collection's terms are read in search.backends.postgres.terms.
__all__ = ["Plan", "ResolvedClause", "Statistics", "fetch", "idf", "plan", "resolve"]

STOP_WORDS_NOTICE = (
    "Every word of your query is too common to search for (such as “the” or “of”); add a more specific word."
)
# Words PostgreSQL's parser reads as something else: text inside <angle brackets> is markup to it.
NO_WORDS_NOTICE = "Nothing in your query can be searched for as words (text in <angle brackets> reads as markup)."


@dataclass
class Filters:
    """The conditions a scored document (`s`, and its row `d` when needs_row) must pass."""

    params: dict = field(default_factory=dict)
    conditions: list[str] = field(default_factory=list)
    needs_row: bool = False
    satisfiable: bool = True  # False: a required group that no document can satisfy


@dataclass
class Plan:
    """The candidate statement for one query, or why there is none."""

    sql: str | None = None  # the one statement when every term is read whole, else the pool read
    params: dict = field(default_factory=dict)
    exhaustive: bool = True  # every term's documents are all scored: the top k is exact
    notices: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)  # conditions on `s` (and `d` when needs_row)
    needs_row: bool = False
    phrases: list[str] = field(default_factory=list)  # required phrases of common words (GIN pool)
    packed: list[int] | None = None  # scored in numpy: the terms read from packs (search.backends.packed)
    unknown_terms: int = 0  # lexemes of the query the collection lacks (and nothing stands in for)
    stood_in_terms: int = 0  # lexemes the collection lacks that library words stand in for
    known_terms: int = 0  # lexemes of the query the collection has
    expanded_words: list[str] = field(default_factory=list)  # library words matched besides the query's
    # Every condition a matching document passes, whatever the strategy (an exhaustive statement
    # applies `filters` itself and keeps none): what scoring given documents checks.
    conditions: list[str] = field(default_factory=list)
    conditions_need_row: bool = False

    def filter_sql(self) -> str:
        """Return the statement that keeps the scored documents (`ids`) passing the filters."""
        join_document = JOIN_DOCUMENT if self.needs_row else ""
        return POOL_FILTER.format(join_document=join_document, filters=" AND ".join(self.filters))

    def conditions_sql(self) -> str:
        """Return the statement that keeps the documents (`ids`) passing every condition of the query."""
        join_document = JOIN_DOCUMENT if self.conditions_need_row else ""
        return POOL_FILTER.format(join_document=join_document, filters=" AND ".join(self.conditions))


@dataclass
class Budget:
    """The query's terms, rarest first, and which are scored over every posting (the rest: pooled)."""

    ordered: list[tuple[int, int]]  # (term id, df)
    exhaustive: list[bool]

    @property
    def commons(self) -> int:
        return self.exhaustive.count(False)

    def pooled_cost(self) -> float:
        """Return what pooling costs, in postings read: the rare terms whole, a pool of each common
        term, and a lookup of the common terms' weights in each rare term's document."""
        rare = sum(df for (_, df), whole in zip(self.ordered, self.exhaustive, strict=True) if whole)
        pools = settings.SEARCH_COMMON_TERM_POOL * self.commons
        return rare + pools + bounds.PROBE_COST * min(bounds.FILL_LIMIT, rare)

    def read_whole(self) -> bool:
        """Return whether scoring every posting of every term beats pooling the common ones.

        Two or more common terms: BM25 saturates, so the best documents are those with all of them
        at ordinary counts, which no single term's best postings hold (docs/benchmarks.md,
        section 4); they are read whole up to a hard cap. Otherwise the cheaper plan wins: reading
        a posting costs 1, looking up a pooled document's missing weight PROBE_COST.
        """
        total = sum(df for _, df in self.ordered)
        if self.commons >= 2:
            return total <= settings.SEARCH_EXHAUSTIVE_POSTINGS * bounds.COMMON_TERMS_FACTOR
        return total <= self.pooled_cost()


def idf(df: int, documents: int) -> float:
    """Return Lucene's BM25 idf: ln(1 + (N - df + 0.5) / (df + 0.5))."""
    return math.log(1 + (documents - df + 0.5) / (df + 0.5))


class _Binder:
    """Names each filter value as a statement parameter."""

    def __init__(self) -> None:
        self.params: dict[str, object] = {}

    def __call__(self, value: object) -> str:
        name = f"f{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"


def _required(group: list[ResolvedClause], bind: _Binder) -> tuple[list[str], bool]:
    """Return the alternatives of one required group (SQL conditions), and whether one reads the row."""
    alternatives, needs_row = [], False
    for member in group:
        if member.clause.phrase:
            needs_row = True
            template = HAS_TEXT if has_cjk(member.clause.text) else HAS_PHRASE
            alternatives.append(template.format(bind(member.clause.text)))
        elif member.terms or member.expansions:
            alternatives.append(HAS_TERM.format(bind([*member.terms, *member.expansions]) + "::bigint[]"))
    return alternatives, needs_row


def _exclusion(item: ResolvedClause, bind: _Binder) -> tuple[str | None, bool]:
    """Return the condition that keeps out one excluded clause (None: nothing to exclude), and
    whether it reads the row."""
    if not item.lexemes:
        return None, False  # an excluded stop word: nothing to exclude
    if has_cjk(item.clause.text):
        return "NOT " + HAS_TEXT.format(bind(item.clause.text)), True
    if item.clause.phrase or len(item.lexemes) > 1:
        return "NOT " + HAS_PHRASE.format(bind(item.clause.text)), True
    if item.terms:
        return "NOT " + HAS_TERM.format(bind(list(item.terms)) + "::bigint[]"), False
    return None, False


def compile_filters(groups: list[list[ResolvedClause]], excluded: list[ResolvedClause]) -> Filters:
    """Return the SQL conditions (and their parameters) for required groups and exclusions."""
    bind = _Binder()
    found = Filters(params=bind.params)
    for group in groups:
        if any(member.clause.phrase and not member.lexemes for member in group):
            continue  # a phrase of stop words only cannot be checked: the group is not required
        alternatives, needs_row = _required(group, bind)
        found.needs_row |= needs_row
        if not alternatives:
            found.satisfiable = False
            return found
        found.conditions.append("(" + " OR ".join(alternatives) + ")")
    for item in excluded:
        condition, needs_row = _exclusion(item, bind)
        found.needs_row |= needs_row
        if condition:
            found.conditions.append(condition)
    return found


def budget(terms: dict[int, int]) -> Budget:
    """Return the terms rarest first, those within the exhaustive budget marked to be read whole.

    A term with no more documents than a common term's pool is read whole either way.
    """
    ordered = sorted(terms.items(), key=lambda item: (item[1], item[0]))
    exhaustive, spent = [], 0
    for _, df in ordered:
        spent += df
        exhaustive.append(spent <= settings.SEARCH_EXHAUSTIVE_POSTINGS or df <= settings.SEARCH_COMMON_TERM_POOL)
    return Budget(ordered, exhaustive)


def usable_packs(scored: list[ResolvedClause], spend: Budget, stats: Statistics) -> list[int] | None:
    """Return the query's packed terms when scoring from packs is the plan, else None.

    Packs serve two or more common terms (where pooling cannot bound the work and every
    posting must be scored), and one common term whose pool would need more lookups of
    the rare terms' documents than reading its pack costs (PACK_COST), when every common
    term has a pack and the documents written since the packs were taken are few enough to
    read live (SEARCH_PACK_CHANGES).
    """
    if not spend.commons or stats.changes > settings.SEARCH_PACK_CHANGES:
        return None
    packs = {term_id for item in scored for term_id in item.packed}
    pairs = zip(spend.ordered, spend.exhaustive, strict=True)
    if any(term_id not in packs for (term_id, _), whole in pairs if not whole):
        return None
    pool_cheaper = bounds.PACK_COST * sum(df for _, df in spend.ordered) >= spend.pooled_cost()
    if spend.commons == 1 and stats.impacts_current and pool_cheaper:
        return None  # one common term beside few rare documents: its pool is cheaper
    return [term_id for term_id, _ in spend.ordered if term_id in packs]


def _nothing_to_score(scored: list[ResolvedClause]) -> Plan:
    """Return the plan of a query none of whose words has a lexeme: a notice saying why, if any."""
    if not any(any(ch.isalnum() for ch in item.clause.text) for item in scored):
        return Plan()
    text = " ".join(segment_for_index(item.clause.text) for item in scored)
    # Only markup hides words from the parser: a query without "<" needs no second look.
    if "<" in text and not fetch(HAS_WORDS_SQL, {"text": text})[0][0]:
        return Plan(notices=[NO_WORDS_NOTICE])
    return Plan(notices=[STOP_WORDS_NOTICE])


def plan(
    query: ParsedQuery,
    *,
    k: int,
    collection: str,
    languages: list[str] | None = None,
    use_packs: bool = True,
    expand: bool = False,
    narrowing: Narrowing | None = None,
) -> Plan:
    """Return the candidate statement for `query` with its parameters (SQL: TERMS_SQL; with
    `expand`, the bounded vocabulary reads of search.backends.postgres.vocabulary.expand)."""
    resolution = resolve([*query.scored, *query.excluded], collection)
    stats = resolution.statistics
    scored = resolution.clauses[: len(query.scored)]
    excluded = resolution.clauses[len(query.scored) :]
    if not any(item.lexemes for item in scored):
        return _nothing_to_score(scored)
    notices = []
    if expand and stats.collection_id is not None:
        notices = vocabulary.expand(query, scored, collection_id=stats.collection_id, collection=collection)
    idfs = query_idfs(scored, stats)
    terms = {term_id: df for item in scored for term_id, df in _dfs(item).items()}
    unknown = sum(max(0, len(item.lexemes) - len(item.terms)) for item in scored if not item.expansions)
    stood_in = sum(max(0, len(item.lexemes) - len(item.terms)) for item in scored if item.expansions)
    if not terms or not stats.documents:
        return Plan(unknown_terms=unknown)
    filters = _query_filters(query, scored, excluded, languages)
    if not filters.satisfiable:
        return Plan()  # a required group that nothing can satisfy
    narrow(filters, narrowing)
    spend = budget(terms)
    packs = usable_packs(scored, spend, stats) if use_packs else None
    # Pools follow the postings' impacts; computed with other parameters than the settings'
    # (changed since the last reindex_documents), they no longer bound what a pool leaves out.
    if packs is None and (not stats.impacts_current or spend.read_whole()):
        spend.exhaustive = [True] * len(spend.exhaustive)
    found = Plan(
        params={**filters.params, **_score_params(spend, idfs, stats, collection=collection, k=k)},
        notices=notices,
        filters=filters.conditions,
        needs_row=filters.needs_row,
        unknown_terms=unknown,
        stood_in_terms=stood_in,
        known_terms=len({term_id for item in scored for term_id in item.terms}),
        expanded_words=_expanded_words(scored),
        conditions=list(filters.conditions),
        conditions_need_row=filters.needs_row,
    )
    return _strategy(found, query, spend, packs, stats)


def _query_filters(
    query: ParsedQuery, scored: list[ResolvedClause], excluded: list[ResolvedClause], languages: list[str] | None
) -> Filters:
    """Return the filters of the query's required groups, exclusions and languages."""
    by_clause = {id(item.clause): item for item in scored}
    filters = compile_filters([[by_clause[id(member)] for member in group] for group in query.required], excluded)
    if languages and filters.satisfiable:
        filters.params["languages"] = list(languages)
        filters.conditions.append(IN_LANGUAGES)
        filters.needs_row = True
    return filters


def narrow(filters: Filters, narrowing: Narrowing | None) -> None:
    """Add the facet filters (a source, added since a moment) to `filters`, which then read the row."""
    if narrowing and narrowing.source is not None:
        filters.params["source"] = narrowing.source
        filters.conditions.append(OF_SOURCE)
        filters.needs_row = True
    if narrowing and narrowing.added_since is not None:
        filters.params["added_since"] = narrowing.added_since
        filters.conditions.append(ADDED_SINCE)
        filters.needs_row = True


def _expanded_words(scored: list[ResolvedClause]) -> list[str]:
    return [expansion.spelled for item in scored for expansion in item.expansions.values()]


def _dfs(item: ResolvedClause) -> dict[int, int]:
    """Return the clause's terms (its own and those it was expanded to) with their df."""
    return {**{e.term_id: e.df for e in item.expansions.values()}, **item.terms}


def query_idfs(scored: list[ResolvedClause], stats: Statistics) -> dict[int, float]:
    """Return each query term's idf: the term's own for the query's words; for an expansion, the
    EXPANSION_WEIGHT share of it, capped at that share of the typed word's own idf (a term both
    typed and expanded to keeps its own)."""
    found: dict[int, float] = {}
    for item in scored:
        own_df = max(item.terms.values(), default=0)
        for e in item.expansions.values():
            weight = bounds.EXPANSION_WEIGHT * idf(max(e.df, own_df), stats.documents)
            found[e.term_id] = max(found.get(e.term_id, 0.0), weight)
    for item in scored:
        found.update((term_id, idf(df, stats.documents)) for term_id, df in item.terms.items())
    return found


def _score_params(spend: Budget, idfs: dict[int, float], stats: Statistics, *, collection: str, k: int) -> dict:
    """Return the parameters every scoring statement shares: the terms, their idfs, the shape."""
    return {
        "term_ids": [term_id for term_id, _ in spend.ordered],
        "idfs": [idfs[term_id] for term_id, _ in spend.ordered],
        "exhaustive": spend.exhaustive,
        "avg_title": stats.avg_title,
        "avg_body": stats.avg_body,
        "k1": settings.SEARCH_BM25_K1,
        "b": settings.SEARCH_BM25_B,
        "title_weight": settings.SEARCH_BM25_TITLE_WEIGHT,
        "config": TS_CONFIG,
        "collection": collection,
        "limit": k,
    }


def _strategy(found: Plan, query: ParsedQuery, spend: Budget, packs: list[int] | None, stats: Statistics) -> Plan:
    """Return `found` with its scoring strategy: from packs, one exhaustive statement, or pooled."""
    if packs is not None:
        found.params.update(
            collection_id=stats.collection_id,
            packed=packs,
            unpacked=[term_id for term_id, _ in spend.ordered if term_id not in packs],
        )
        found.sql, found.exhaustive, found.packed = packed.PACK_READ, False, packs
        return found
    if all(spend.exhaustive):
        found.sql = CANDIDATES.format(
            query_terms=QUERY_TERMS,
            scoring=SCORE_EXHAUSTIVE,
            join_document=JOIN_DOCUMENT if found.needs_row else "",
            filters=" AND ".join(found.filters) or "true",
        )
        # One statement applies the filters itself: the plan keeps none for later.
        found.filters, found.needs_row = [], False
        return found
    found.phrases = [
        member.text for group in query.required for member in group if member.phrase and not has_cjk(member.text)
    ]
    found.sql, found.exhaustive = POOL_READ, False
    return found
