"""Choose BM25's k1, b and title weight, and BM25F or a field boost, on training splits only.

Each training set's corpus is imported as `evaluate` imports it (the same collection), then the
site's own postings and the queries' lexemes (the PostgreSQL backend's TERMS_SQL) are read once,
and every parameter combination is scored exhaustively in numpy: the same formula as
search_bm25_weight, over the same tokens. The test splits are never read.

    .venv/bin/python -m bench.bm25_tuning --output docs/benchmarks/bm25_tuning.json
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import django_stack, machine, write_json

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# (folder, training split): the only sets in ../shared/data with a split that is not `test`.
TRAINING_SETS = [("cmrc2018", "train"), ("kuake-qtr", "train"), ("trec-dl-passage", "train")]
K1_GRID = [0.6, 0.9, 1.2, 1.5, 1.8, 2.1]
B_GRID = [0.3, 0.45, 0.6, 0.75, 0.9]
TITLE_WEIGHT_GRID = [1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
VARIANTS = ["bm25f", "boost"]
DEPTH = 50  # candidates per query, SEARCH_K_INITIAL


@dataclass
class Prepared:
    """One training set as arrays: postings (document, term, counts, lengths) and query terms."""

    name: str
    queries: list  # EvalQuery
    qrels: dict[str, dict[str, int]]
    doc_ids: list[str]  # row -> corpus id
    rows: object  # posting -> document row
    cols: object  # posting -> term column
    tf_title: object
    tf_body: object
    title_tokens: object
    body_tokens: object
    df: object  # term column -> document frequency
    query_matrix: object  # terms x queries: each query's terms, weighted by their idf


def prepare(folder: str, split: str, max_queries: int) -> Prepared:
    import numpy as np
    from django.db import connection
    from scipy.sparse import csc_matrix

    from documents.models import Document
    from evaluation import runner as evaluation
    from search.backends.postgres.planning import idf, resolve
    from search.query import parse

    dataset = evaluation.dataset_load(directory=DATA / folder, split=split, max_queries=max_queries)
    collection = evaluation.collection_name(dataset)
    report = evaluation.corpus_import(dataset=dataset, collection=collection)
    print(f"{folder}/{split}: {len(dataset.queries)} queries; corpus {report.already + report.created} documents")
    external = dict(Document.objects.filter(collection=collection).values_list("id", "external_id"))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.document_id, p.term_id, p.tf_title, p.tf_body, p.title_tokens, p.body_tokens
            FROM search_bm25_posting p JOIN search_bm25_term t ON t.id = p.term_id
            JOIN search_bm25_collection c ON c.id = t.collection_id WHERE c.name = %s
            """,
            [collection],
        )
        postings = np.array(cursor.fetchall(), dtype=np.int64)
    documents = sorted(external)
    row_of = {pk: row for row, pk in enumerate(documents)}
    terms = np.unique(postings[:, 1])
    col_of = {term: col for col, term in enumerate(terms.tolist())}
    rows = np.array([row_of[pk] for pk in postings[:, 0].tolist()])
    cols = np.array([col_of[term] for term in postings[:, 1].tolist()])
    df = np.bincount(cols, minlength=len(terms))
    entries: list[tuple[int, int, float]] = []
    for column, query in enumerate(dataset.queries):
        resolved = resolve(parse(query.text).scored, collection).clauses
        ids = {term_id for item in resolved for term_id in item.terms}
        for term in sorted(col_of[term_id] for term_id in ids if term_id in col_of):
            entries.append((term, column, idf(int(df[term]), len(documents))))
    term_rows, query_cols, values = zip(*entries, strict=True) if entries else ((), (), ())
    query_matrix = csc_matrix((values, (term_rows, query_cols)), shape=(len(terms), len(dataset.queries)))
    return Prepared(
        name=folder,
        queries=dataset.queries,
        qrels=dataset.qrels,
        doc_ids=[external[pk] for pk in documents],
        rows=rows,
        cols=cols,
        tf_title=postings[:, 2].astype(float),
        tf_body=postings[:, 3].astype(float),
        title_tokens=postings[:, 4].astype(float),
        body_tokens=postings[:, 5].astype(float),
        df=df,
        query_matrix=query_matrix,
    )


def weights(data: Prepared, *, k1: float, b: float, title_weight: float, variant: str):
    """Return each posting's BM25 weight without idf (search_bm25_weight for "bm25f")."""
    import numpy as np

    documents = len(data.doc_ids)
    # Lengths are per document; every posting carries its document's, so the averages over
    # documents are taken from one posting per document.
    first = np.unique(data.rows, return_index=True)[1]
    avg_title = max(data.title_tokens[first].sum() / documents, 1e-9)
    avg_body = max(data.body_tokens[first].sum() / documents, 1e-9)
    norm_title = 1 - b + b * data.title_tokens / avg_title
    norm_body = 1 - b + b * data.body_tokens / avg_body
    if variant == "bm25f":
        pseudo = title_weight * data.tf_title / norm_title + data.tf_body / norm_body
        return pseudo * (k1 + 1) / (pseudo + k1)
    title = data.tf_title * (k1 + 1) / (data.tf_title + k1 * norm_title)
    body = data.tf_body * (k1 + 1) / (data.tf_body + k1 * norm_body)
    return title_weight * title + body


def evaluate_combo(data: Prepared, **params: object) -> dict[str, float]:
    """Return the mean metrics of every query of `data`, ranked by BM25 with `params` (CPU)."""
    import numpy as np
    from scipy.sparse import csc_matrix

    from evaluation import runner as evaluation

    documents = len(data.doc_ids)
    matrix = csc_matrix((weights(data, **params), (data.rows, data.cols)), shape=(documents, len(data.df)))
    scores = (matrix @ data.query_matrix).toarray()  # documents x queries
    per_query = []
    for column, query in enumerate(data.queries):
        judged = data.qrels[query.id]
        values = scores[:, column]
        top = np.argsort(-values, kind="stable")[:DEPTH]
        ranking = [data.doc_ids[i] for i in top.tolist() if values[i] > 0]
        per_query.append(evaluation.query_metrics(ranking, judged, k_initial=DEPTH))
    return evaluation.mean_metrics(per_query)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-queries", type=int, default=300, help="judged training queries per set, in file order")
    parser.add_argument("--k1", type=float, nargs="+", default=K1_GRID)
    parser.add_argument("--b", type=float, nargs="+", default=B_GRID)
    parser.add_argument("--title-weight", type=float, nargs="+", default=TITLE_WEIGHT_GRID)
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--output")
    args = parser.parse_args()
    with django_stack():
        from django.core.management import call_command

        call_command("migrate", "--noinput", verbosity=0)
        sets = [prepare(folder, split, args.max_queries) for folder, split in TRAINING_SETS]
        started = time.perf_counter()
        grid = []
        for variant, k1, b, title_weight in itertools.product(args.variants, args.k1, args.b, args.title_weight):
            params = {"k1": k1, "b": b, "title_weight": title_weight, "variant": variant}
            per_set = {data.name: evaluate_combo(data, **params) for data in sets}
            macro = {
                metric: round(sum(m[metric] for m in per_set.values()) / len(per_set), 4)
                for metric in ("ndcg@10", "mrr@5", "recall@k_initial")
            }
            grid.append({**params, "macro": macro, "per_set": per_set})
        grid.sort(key=lambda row: -row["macro"]["ndcg@10"])
        best = {variant: next(row for row in grid if row["variant"] == variant) for variant in args.variants}
        for variant, row in best.items():
            print(f"best {variant}: k1 {row['k1']} b {row['b']} title {row['title_weight']} -> {row['macro']}")
        write_json(
            args.output,
            {
                "benchmark": "bm25_tuning",
                "machine": machine(),
                "sets": [f"{folder}/{split}" for folder, split in TRAINING_SETS],
                "queries": {data.name: len(data.queries) for data in sets},
                "depth": DEPTH,
                "grid": {"k1": args.k1, "b": args.b, "title_weight": args.title_weight, "variants": args.variants},
                "seconds": round(time.perf_counter() - started, 1),
                "best": best,
                "top10": grid[:10],
                # Every combination: its parameters and nDCG@10 / Recall@50 per set.
                "all": [
                    {
                        **{key: row[key] for key in ("variant", "k1", "b", "title_weight")},
                        **{
                            name: [round(m["ndcg@10"], 4), round(m["recall@k_initial"], 4)]
                            for name, m in row["per_set"].items()
                        },
                    }
                    for row in grid
                ],
            },
        )


if __name__ == "__main__":
    main()
