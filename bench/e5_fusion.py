"""Should a bi-encoder's reranked order blend in the BM25 score? Chosen on training splits only.

The offline fallback (multilingual-e5-small) is a bi-encoder: on some sets (Cranfield's
aerodynamics abstracts) its cosine alone orders the candidates no better than BM25. This runs
every query of each set through the site's own path (search_run: our BM25 candidates, a private
worker serving `--model`, chunk vectors, a document's score the max of its chunks) and keeps,
per candidate, its BM25 score and its cosine. Offline, it then orders the candidates by

    fused = w * minmax(bm25) + (1 - w) * minmax(cosine)      (per query, over its candidates)

for each w of the grid, and picks the w with the best mean nDCG@10 over the training splits
(cmrc2018, kuake-qtr and trec-dl-passage train: the only sets in ../shared/data that have one).
The test splits are then scored with that w only, never used to choose it.

    .venv/bin/python -m bench.e5_fusion --output docs/benchmarks/e5_fusion.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.common import django_stack, machine, write_json

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRAINING = [("cmrc2018", "train"), ("kuake-qtr", "train"), ("trec-dl-passage", "train")]
TESTS = [
    ("cranfield", "test"),
    ("trec-dl-passage", "test"),
    ("rgb-zh", "test"),
    ("cmrc2018", "test"),
    ("kuake-qtr", "test"),
]
GRID = [round(0.05 * i, 2) for i in range(21)]
DEPTH = 50


def fused_order(rows: list[dict], weight: float) -> list[str]:
    """Return the corpus ids ordered as the site orders them (search.services.bm25_blend, the
    same rounding and ties); candidates without a cosine follow, in BM25 order."""
    from search.services import bm25_blend

    scored = {i: row["cosine"] for i, row in enumerate(rows) if row["cosine"] is not None}
    blended = bm25_blend({i: rows[i]["bm25"] for i in scored}, scored, weight=weight) if scored else {}
    order = sorted(
        range(len(rows)),
        key=lambda i: (i not in blended, -round(blended.get(i, 0.0), 4), rows[i]["fulltext_rank"]),
    )
    return [rows[i]["id"] for i in order]


def collect(folder: str, split: str, max_queries: int | None) -> dict:
    """Run every query through search_run; return per query its candidates' BM25 and cosine."""
    from evaluation import runner as evaluation
    from search.services import search_run

    dataset = evaluation.dataset_load(directory=DATA / folder, split=split, max_queries=max_queries)
    collection = evaluation.collection_name(dataset)
    evaluation.corpus_import(dataset=dataset, collection=collection)
    ids = evaluation.collection_ids(collection)
    started = time.monotonic()
    queries, not_reranked = [], 0
    for query in dataset.queries:
        outcome = search_run(query=query.text, k=DEPTH, k_initial=DEPTH, collection=collection)
        cosine = {row.document_id: row.model_score for row in outcome.reranked} if outcome.is_reranked else {}
        not_reranked += not outcome.is_reranked
        queries.append(
            {
                "id": query.id,
                "language": query.language,
                "rows": [
                    {
                        "id": ids[row.document_id][0],
                        "bm25": row.fulltext_score,
                        "cosine": cosine.get(row.document_id),
                        "fulltext_rank": row.fulltext_rank,
                    }
                    for row in outcome.fulltext
                ],
            }
        )
    print(f"{folder}/{split}: {len(queries)} queries in {time.monotonic() - started:.0f} s", flush=True)
    return {"queries": queries, "qrels": dataset.qrels, "not_reranked": not_reranked}


def score(collected: dict, weight: float) -> dict[str, float]:
    from evaluation import runner as evaluation

    per_query = [
        evaluation.query_metrics(fused_order(q["rows"], weight), collected["qrels"][q["id"]], k_initial=DEPTH)
        for q in collected["queries"]
    ]
    return {name: round(value, 4) for name, value in evaluation.mean_metrics(per_query).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="packaged-e5-fp32")
    parser.add_argument("--train-queries", type=int, default=300, help="first N judged queries per training split")
    parser.add_argument("--test-queries", type=int, default=100, help="first N judged test queries (DL19: all 42)")
    parser.add_argument("--output")
    args = parser.parse_args()

    with django_stack():
        from evaluation import runner as evaluation

        worker = evaluation.worker_start(model=args.model, languages="en,zh")
        try:
            worker.wait_ready(timeout=300)
            with evaluation.rerank_settings(queue=worker.queue, timeout=120.0):
                train = {f"{f}/{s}": collect(f, s, args.train_queries) for f, s in TRAINING}
                test = {f"{f}/{s}": collect(f, s, args.test_queries) for f, s in TESTS}
        finally:
            worker.stop()

    grid = {
        str(weight): {name: score(collected, weight)["ndcg@10"] for name, collected in train.items()} for weight in GRID
    }
    best = max(GRID, key=lambda w: (sum(grid[str(w)].values()) / len(train), -w))
    report = {
        "benchmark": "e5_fusion",
        "machine": machine(),
        "model": args.model,
        "formula": "w * minmax(bm25) + (1 - w) * minmax(cosine), per query over its candidates",
        "train_ndcg@10_by_weight": grid,
        "chosen_weight": best,
        "train": {name: {"queries": len(c["queries"]), "not_reranked": c["not_reranked"]} for name, c in train.items()},
        "test": {
            name: {
                "queries": len(c["queries"]),
                "not_reranked": c["not_reranked"],
                "bm25": score(c, 1.0),
                "cosine": score(c, 0.0),
                "fused": score(c, best),
            }
            for name, c in test.items()
        },
    }
    write_json(args.output, report)


if __name__ == "__main__":
    main()
