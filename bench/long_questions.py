"""Long questions (issue 23 §4): our full-text order against bm25s on the public sets' longest queries.

Each measurement changes one thing and keeps the rest (docs/evaluation.md, "Long questions"):

- **query-term frequency**: ours counts a term once however often the query repeats it; bm25s adds
  it once per occurrence. Measured both ways on both engines (ours: each term's idf times its
  count in the query, the only change).
- **stop words**: ours drops PostgreSQL's `english` stop words (127), bm25s its own list (33);
  bm25s is run with each list, and with none.
- **the bounded plan's pools**: ours with the smallest pools and exhaustive budget the settings
  allow (SEARCH_COMMON_TERM_POOL 10, SEARCH_EXHAUSTIVE_POSTINGS 100), so that many-term queries
  take the pooled and packed paths, against every posting read: the top 50 must be the same.
  Also with the pools widened until they prove the top k exact (`pooled_until_exact`, at most
  WIDEN_ROUNDS pool sizes) instead of once: a diagnostic, not what the engine does.
- **the 500-character cut**: how many queries it touches.

The corpora are imported as `evaluate` imports them (the same collections). Test splits are read
for measurement only; nothing here chooses a parameter.

    DATABASE_URL=... .venv/bin/python -m bench.long_questions --output docs/benchmarks/long_questions.json
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from bench.common import django_stack, machine, write_json

DATA = Path(os.environ.get("EVAL_DATA", "/work/shared/data"))
SETS = ["cranfield", "trec-dl-passage"]
DEPTH = 50
PG_STOP = "english.stop"


def _pg_stop_words() -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'")
        row = cursor.fetchone()
    candidates = [Path(row[0]) / "tsearch_data" / PG_STOP] if row else []
    for path in candidates:
        if path.is_file():
            return path.read_text().split()
    raise SystemExit("PostgreSQL's english.stop was not found")


@contextmanager
def query_tf_counted():
    """Ours with each term's idf multiplied by how many of the query's words hold it."""
    from search.backends.postgres import planning

    original = planning.query_idfs

    def counted(scored, stats):
        found = original(scored, stats)
        counts = Counter(term_id for item in scored for term_id in item.terms)
        return {term_id: value * counts.get(term_id, 1) for term_id, value in found.items()}

    planning.query_idfs = counted
    try:
        yield
    finally:
        planning.query_idfs = original


# Pool sizes tried by pooled_until_exact: SEARCH_COMMON_TERM_POOL × POOL_GROWTH^0..5.
WIDEN_ROUNDS = 6


@contextmanager
def pooled_until_exact():
    """Ours with the pooled plan widened (× POOL_GROWTH) until it proves its top k exact, or its
    lookups run out, instead of widening once (search.backends.postgres.scoring.pooled)."""
    from django.conf import settings

    from search.backends.postgres import bounds, scoring

    original = scoring.pooled

    def widened(plan, *, k):
        pool_size = settings.SEARCH_COMMON_TERM_POOL
        for _ in range(WIDEN_ROUNDS):
            result = scoring.pool_top(plan, k=k, pool_size=pool_size)
            if result.exact or result.budget_spent:
                break
            pool_size *= bounds.POOL_GROWTH
        return scoring._with_rows(result.scores, plan, exact=result.exact)

    scoring.pooled = widened
    try:
        yield
    finally:
        scoring.pooled = original


def ours(dataset, collection, ids, aliases, **settings_changes) -> dict[str, list[str]]:
    from django.test import override_settings

    from evaluation.runner import corpus_ranking
    from search.backends import find_candidates

    with override_settings(**settings_changes):
        return {
            q.id: corpus_ranking(
                [c.document_id for c in find_candidates(q.text, k=DEPTH, collection=collection).candidates],
                ids,
                aliases,
                DEPTH,
            )
            for q in dataset.queries
        }


def peer(dataset, *, stopwords, dedupe: bool) -> dict[str, list[str]]:
    """bm25s as evaluation.baseline runs it, with another stop-word list or query tf."""
    import bm25s
    import numpy as np
    import Stemmer

    from evaluation.baseline import K1, WORD_PATTERN, B, _texts
    from evaluation.runner import corpus_items

    items = list(corpus_items(dataset.corpus_path))
    stemmer = Stemmer.Stemmer("english")
    options = {"stopwords": stopwords, "stemmer": stemmer, "token_pattern": WORD_PATTERN, "show_progress": False}
    tokens = bm25s.tokenize(_texts(f"{i.title}\n{i.body}" for i in items), **options)
    retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
    retriever.index(tokens, show_progress=False)
    rankings = {}
    for q in dataset.queries:
        words = bm25s.tokenize(_texts([q.text]), return_ids=False, **options)[0]
        known = [w for w in words if w in tokens.vocab]
        if dedupe:
            known = list(dict.fromkeys(known))
        if not known:
            rankings[q.id] = []
            continue
        scores = retriever.get_scores(known)
        order = np.argsort(-scores, kind="stable")[:DEPTH]
        rankings[q.id] = [items[i].external_id for i in order.tolist() if scores[i] > 0]
    return rankings


def scores(rankings, dataset, chosen) -> dict[str, float]:
    from evaluation.runner import mean_metrics, query_metrics

    per_query = [query_metrics(rankings[q.id], dataset.qrels[q.id], k_initial=DEPTH) for q in chosen]
    means = mean_metrics(per_query)
    return {"ndcg@10": round(means["ndcg@10"], 3), "recall@50": round(means["recall@k_initial"], 3)}


def per_query_ndcg(rankings, dataset, chosen) -> list[float]:
    from evaluation.runner import ndcg

    return [ndcg(rankings[q.id], dataset.qrels[q.id], depth=10) for q in chosen]


def measure(name: str) -> dict:
    from evaluation.runner import (
        collection_ids,
        collection_name,
        corpus_aliases,
        corpus_import,
        dataset_load,
        paired_randomization_p,
    )

    dataset = dataset_load(directory=DATA / name)
    if name == "trec-dl-passage":
        dataset.queries = dataset.queries[:100]  # the judged test queries: DL19's 42
    collection = collection_name(dataset)
    corpus_import(dataset=dataset, collection=collection)
    ids, aliases = collection_ids(collection), corpus_aliases(dataset=dataset, collection=collection)
    by_length = sorted(dataset.queries, key=lambda q: -len(q.text))
    longest = by_length[: max(1, len(by_length) // 3)]
    runs = {"ours": ours(dataset, collection, ids, aliases)}
    with query_tf_counted():
        runs["ours, query tf counted"] = ours(dataset, collection, ids, aliases)
    runs["ours, smallest pools"] = ours(
        dataset, collection, ids, aliases, SEARCH_COMMON_TERM_POOL=10, SEARCH_EXHAUSTIVE_POSTINGS=100
    )
    with pooled_until_exact():
        runs["ours, smallest pools, widened until exact"] = ours(
            dataset, collection, ids, aliases, SEARCH_COMMON_TERM_POOL=10, SEARCH_EXHAUSTIVE_POSTINGS=100
        )
    runs["ours, every posting read"] = ours(dataset, collection, ids, aliases, SEARCH_EXHAUSTIVE_POSTINGS=10**9)
    runs["bm25s"] = peer(dataset, stopwords="en", dedupe=False)
    runs["bm25s, query tf once"] = peer(dataset, stopwords="en", dedupe=True)
    runs["bm25s, PostgreSQL's stop words"] = peer(dataset, stopwords=_pg_stop_words(), dedupe=False)
    runs["bm25s, no stop words"] = peer(dataset, stopwords=None, dedupe=False)
    lengths = sorted(len(q.text) for q in dataset.queries)
    repeated = sum(1 for q in dataset.queries if len(set(q.text.lower().split())) < len(q.text.lower().split()))
    result = {
        "queries": len(dataset.queries),
        "longest_third": len(longest),
        "chars": {"median": lengths[len(lengths) // 2], "max": lengths[-1], "over_500": sum(n > 500 for n in lengths)},
        "queries_repeating_a_word": repeated,
        "pools_identical_top50": sum(
            runs["ours, smallest pools"][q.id] == runs["ours, every posting read"][q.id] for q in dataset.queries
        ),
        "pools_widened_until_exact_identical_top50": sum(
            runs["ours, smallest pools, widened until exact"][q.id] == runs["ours, every posting read"][q.id]
            for q in dataset.queries
        ),
        "all": {label: scores(r, dataset, dataset.queries) for label, r in runs.items()},
        "longest": {label: scores(r, dataset, longest) for label, r in runs.items()},
    }
    base = per_query_ndcg(runs["ours"], dataset, longest)
    result["p_longest"] = {
        label: round(paired_randomization_p(per_query_ndcg(r, dataset, longest), base), 3)
        for label, r in runs.items()
        if label != "ours"
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--sets", default=",".join(SETS))
    args = parser.parse_args()
    with django_stack():
        found = {"machine": machine()}
        for name in args.sets.split(","):
            found[name] = measure(name)
            print(name, found[name], flush=True)
    if args.output:
        write_json(args.output, found)


if __name__ == "__main__":
    main()
