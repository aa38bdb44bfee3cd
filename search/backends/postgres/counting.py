"""Counting: how many documents a query matches, to any depth, and its facets' counts.

Independent of the rerank pool and of the scoring strategy: a document matches when it holds
one of the query's terms and passes its required phrases and exclusions, exactly the documents
the candidates are the best of. One statement (COUNT_SQL, after TERMS_SQL) reads the postings
of the query's terms and the matched documents' language, source and date, and counts each
facet under the other facets' filters (a chip's count is what choosing it gives).

Work is bounded: when the query's terms have more than SEARCH_COUNT_POSTINGS postings in all,
each term gives only its share of that many (a sample), and the counts are estimated: the
documents holding any term, from each term's df as if terms occurred independently
(N * (1 - prod(1 - df/N))), times the share of the sampled documents that pass the filters.
The page and the API then say "about".
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from documents.textsearch import TS_CONFIG
from search.backends.base import MatchCount, Narrowing
from search.backends.postgres import planning, vocabulary
from search.backends.postgres.statements import JOIN_DOCUMENT
from search.backends.postgres.terms import fetch, resolve
from search.query import ParsedQuery

# The sources a count lists at most (the most frequent first).
SOURCES_LISTED = 10

COUNT_SQL = """
WITH q AS (SELECT * FROM unnest(%(term_ids)s::bigint[]) AS q(term_id)),
matched AS (
    SELECT DISTINCT p.document_id FROM q CROSS JOIN LATERAL (
        SELECT x.document_id FROM search_bm25_posting x WHERE x.term_id = q.term_id LIMIT %(per_term)s
    ) p
),
passing AS MATERIALIZED (
    SELECT d.language, d.source, d.created_at FROM matched s {join_document} WHERE {filters}
)
SELECT 'matched', NULL, (SELECT count(*) FROM matched)
UNION ALL
SELECT 'language', language, count(*) FILTER (WHERE {source_ok} AND {added_ok}) FROM passing GROUP BY language
UNION ALL
(SELECT 'source', source, count(*) FILTER (WHERE {language_ok} AND {added_ok}) AS n FROM passing
 GROUP BY source ORDER BY n DESC, source LIMIT %(sources)s)
{added}
"""
ADDED_BUCKET = (
    "UNION ALL SELECT 'added', %({name})s, count(*) FILTER (WHERE created_at >= %({param})s "
    "AND {language_ok} AND {source_ok}) FROM passing"
)


def union_estimate(dfs: list[int], documents: int) -> float:
    """Return how many documents hold any of the terms, were they independent: N(1 - prod(1 - df/N))."""
    missing = 1.0
    for df in dfs:
        missing *= 1 - min(df, documents) / documents
    estimate = documents * (1 - missing)
    return min(max(estimate, max(dfs, default=0)), documents, sum(dfs))


def count(
    query: ParsedQuery,
    *,
    collection: str,
    languages: list[str] | None,
    narrowing: Narrowing | None,
    since: dict[str, datetime],
    expand: bool = False,
) -> MatchCount:
    """Return the documents matching `query` under the filters, and each facet's counts (SQL:
    TERMS_SQL, with `expand` the vocabulary's reads as planning does them, then COUNT_SQL)."""
    resolution = resolve([*query.scored, *query.excluded], collection)
    stats = resolution.statistics
    scored = resolution.clauses[: len(query.scored)]
    excluded = resolution.clauses[len(query.scored) :]
    if expand and stats.collection_id is not None and any(item.lexemes for item in scored):
        vocabulary.expand(query, scored, collection_id=stats.collection_id, collection=collection)
    # The query's own terms and those it was expanded to (near spellings, completions), as planned.
    terms = {term_id: df for item in scored for term_id, df in planning._dfs(item).items()}
    if not terms or not stats.documents:
        return MatchCount()
    by_clause = {id(item.clause): item for item in scored}
    filters = planning.compile_filters(
        [[by_clause[id(member)] for member in group] for group in query.required], excluded
    )
    if not filters.satisfiable:
        return MatchCount()
    postings = sum(terms.values())
    budget = settings.SEARCH_COUNT_POSTINGS
    exact = postings <= budget
    params = {
        **filters.params,
        "config": TS_CONFIG,  # the phrase filters' configuration
        "term_ids": list(terms),
        "per_term": None if exact else max(1, budget // len(terms)),
        "sources": SOURCES_LISTED,
        "languages": list(languages or []),
        "source": narrowing.source if narrowing else None,
        "added_since": narrowing.added_since if narrowing else None,
    }
    sql = _count_sql(filters.conditions, params, languages=languages, narrowing=narrowing, since=since)
    found = MatchCount(exact=exact, postings=postings)
    sampled = _read_counts(fetch(sql, params), found)
    found.total = sum(n for language, n in found.languages.items() if not languages or language in languages)
    if not exact and sampled:
        scale = union_estimate(list(terms.values()), stats.documents) / sampled
        found.total = _about(found.total * scale)
        found.languages = {key: _about(n * scale) for key, n in found.languages.items()}
        found.sources = [(key, _about(n * scale)) for key, n in found.sources]
        found.added = {key: _about(n * scale) for key, n in found.added.items()}
    return found


def _count_sql(
    conditions: list[str],
    params: dict,
    *,
    languages: list[str] | None,
    narrowing: Narrowing | None,
    since: dict[str, datetime],
) -> str:
    """Return COUNT_SQL for these filters, one bucket of the date facet for each of `since`'s
    moments (their parameters are added to `params`)."""
    language_ok = "language = ANY(%(languages)s::text[])" if languages else "true"
    source_ok = "source = %(source)s" if narrowing and narrowing.source is not None else "true"
    added_ok = "created_at >= %(added_since)s" if narrowing and narrowing.added_since is not None else "true"
    buckets = []
    for index, (name, moment) in enumerate(since.items()):
        params[f"bucket{index}"], params[f"since{index}"] = name, moment
        buckets.append(
            ADDED_BUCKET.format(
                name=f"bucket{index}", param=f"since{index}", language_ok=language_ok, source_ok=source_ok
            )
        )
    return COUNT_SQL.format(
        join_document=JOIN_DOCUMENT,
        filters=" AND ".join(conditions) or "true",
        language_ok=language_ok,
        source_ok=source_ok,
        added_ok=added_ok,
        added="\n".join(buckets),
    )


def _read_counts(rows, found: MatchCount) -> int:
    """Put COUNT_SQL's rows into `found`'s facets; return the documents the (sampled) scan matched."""
    sampled = 0
    for kind, value, number in rows:
        if kind == "matched":
            sampled = number
        elif kind == "language":
            found.languages[value] = number
        elif kind == "source" and number:
            found.sources.append((value, number))
        elif kind == "added":
            found.added[value] = number
    return sampled


def _about(value: float) -> int:
    """Return an estimate rounded to two significant figures (12,345 -> 12,000)."""
    number = round(value)
    if number < 100:
        return number
    digits = len(str(number)) - 2
    return round(number, -digits)
