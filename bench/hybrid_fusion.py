"""The hybrid pool's constants, chosen on training splits only: RRF's k and the blend's BM25 weight.

Each training query runs through the site's own path (search_run: BM25's candidates fused with the
nearest documents by vector, k = SEARCH_RRF_K, a private worker serving packaged-e5-fp32, the
chunk vectors in PostgreSQL), once per k of the grid, and once with the keyword pool alone
(SEARCH_SEMANTIC off) for reference. Each run keeps, per pool document, its BM25 score (a
document found by meaning alone: its own BM25 for the query, 0 when it holds none of the words)
and its cosine; the blend w × minmax(BM25) + (1 − w) × minmax(cosine) is then scored offline for
each w of the grid (search.services.bm25_blend, the site's rounding and ties). The pool depends on
k only, so one run per k serves every w.

Test splits are never read here. The worker embeds every chunk of the set's corpus first (this
script waits until none is left), so the semantic list is complete from the first query.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m bench.hybrid_fusion --set cmrc2018:train \
        --max-queries 100 --output docs/benchmarks/hybrid_fusion.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench.common import django_stack, machine, write_json

DATA = Path(os.environ.get("SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MODEL = "packaged-e5-fp32"
DEPTH = 50
RRF_GRID = [10, 30, 60, 120, 240]
WEIGHT_GRID = [round(0.1 * i, 1) for i in range(11)]
KEYWORD = "keyword"  # the pool of BM25's candidates alone


def keyword_scaled_blend(rows: list[dict], scored: dict[int, float], weight: float) -> dict[int, float]:
    """Return the blend with BM25 min-max scaled over BM25's own candidates in the pool (those not
    found by meaning alone), a document found by meaning alone clipped to [0, 1] on that scale: the
    keyword candidates' BM25 spread is then what it is in the keyword pool (a variant, not the site's)."""
    from search.services import bm25_blend

    keyword = [rows[i]["bm25"] for i in scored if not rows[i]["meaning"]]
    if len(keyword) < 2 or max(keyword) - min(keyword) < 1e-12:
        return bm25_blend({i: rows[i]["bm25"] for i in scored}, scored, weight=weight)
    low, high = min(keyword), max(keyword)
    lexical = {i: min(1.0, max(0.0, (rows[i]["bm25"] - low) / (high - low))) for i in scored}
    semantic = bm25_blend(dict.fromkeys(scored, 0.0), scored, weight=0.0)  # minmax(cosine)
    return {i: weight * lexical[i] + (1 - weight) * semantic[i] for i in scored}


def blended_order(rows: list[dict], weight: float, variant: str = "pool") -> list[str]:
    """Return the pool's corpus ids in the reranked order the site gives them (search.services:
    bm25_blend, rounded to 4 places; ties and unscored rows in the order of `rows`); variant
    "keyword-scale": keyword_scaled_blend instead."""
    from search.services import bm25_blend

    scored = {i: row["cosine"] for i, row in enumerate(rows) if row["cosine"] is not None}
    if not scored:
        blended = {}
    elif variant == "keyword-scale":
        blended = keyword_scaled_blend(rows, scored, weight)
    else:
        blended = bm25_blend({i: rows[i]["bm25"] for i in scored}, scored, weight=weight)
    order = sorted(range(len(rows)), key=lambda i: (i not in blended, -round(blended.get(i, 0.0), 4), i))
    return [rows[i]["id"] for i in order]


def collect(dataset, collection: str, ids: dict) -> dict:
    """Return per query the pool's rows (pool order): corpus id, BM25 score, cosine, found by meaning."""
    from search.services import search_run

    queries, not_reranked, meaning = [], 0, 0
    for query in dataset.queries:
        outcome = search_run(query=query.text, k=DEPTH, k_initial=DEPTH, collection=collection, expand=False)
        not_reranked += not outcome.is_reranked
        meaning += outcome.meaning_count
        # The whole pool (k = k_initial: one page), in the site's reranked order; ties at other
        # weights keep this order (the site keeps the pool's: rounded blends rarely tie).
        rows = outcome.reranked if outcome.is_reranked else []
        queries.append(
            {
                "id": query.id,
                "rows": [
                    {
                        "id": ids[row.document_id][0],
                        "bm25": row.fulltext_score,
                        "cosine": row.model_score,
                        "meaning": row.found_by_meaning,
                    }
                    for row in rows
                ],
            }
        )
    return {"queries": queries, "not_reranked": not_reranked, "meaning_candidates": meaning}


def score(collected: dict, qrels: dict, weight: float, variant: str = "pool") -> float:
    from evaluation import runner as evaluation

    values = [
        evaluation.ndcg(blended_order(q["rows"], weight, variant), qrels[q["id"]], depth=10)
        for q in collected["queries"]
    ]
    return round(sum(values) / len(values), 4)


def run_set(
    folder: str, split: str, max_queries: int | None, embed_timeout: float, raw_dir: Path | None = None
) -> dict:
    from django.core.cache import cache
    from django.test.utils import override_settings

    from bench.semantic_recall import missing_vectors
    from evaluation import runner as evaluation
    from search import worker_client
    from worker.protocol import Heartbeat

    assert split != "test", "constants are chosen on training splits only"
    dataset = evaluation.dataset_load(directory=DATA / folder, split=split, max_queries=max_queries)
    collection = evaluation.collection_name(dataset)
    evaluation.corpus_import(dataset=dataset, collection=collection)
    ids = evaluation.collection_ids(collection)
    worker = evaluation.worker_start(model=MODEL, languages="en,zh")
    runs: dict[str, dict] = {}
    try:
        worker.wait_ready(timeout=300)
        with evaluation.rerank_settings(queue=worker.queue, timeout=120.0):
            # The vectors are stored under the embedder's own name (the heartbeat's), not MODEL.
            embedder = Heartbeat.from_message(cache.get(Heartbeat.key(worker.queue))).embedder
            worker_client.send_texts_to_embed([], queue=worker.queue)
            started = time.monotonic()
            while True:
                chunks, stored = missing_vectors(collection, embedder)
                print(f"{folder}: {stored}/{chunks} chunk vectors", flush=True)
                if stored >= chunks:
                    break
                if time.monotonic() - started > embed_timeout:
                    raise SystemExit(f"{folder}: still {chunks - stored} chunks without vectors")
                time.sleep(15)
            with override_settings(SEARCH_SEMANTIC=False):
                runs[KEYWORD] = collect(dataset, collection, ids)
            for k in RRF_GRID:
                with override_settings(SEARCH_SEMANTIC=True, SEARCH_RRF_K=k, SEARCH_SEMANTIC_TIMEOUT=60.0):
                    runs[str(k)] = collect(dataset, collection, ids)
                print(f"{folder}/{split}: k = {k} done", flush=True)
    finally:
        worker.stop()
    if raw_dir is not None:
        raw = {"runs": runs, "qrels": dataset.qrels}
        (raw_dir / f"{folder}-{split}.json").write_text(json.dumps(raw, ensure_ascii=False) + "\n")
    return {
        "set": folder,
        "split": split,
        "queries": len(dataset.queries),
        "ndcg@10": {pool: {str(w): score(run, dataset.qrels, w) for w in WEIGHT_GRID} for pool, run in runs.items()},
        "ndcg@10_keyword_scale": {
            pool: {str(w): score(run, dataset.qrels, w, "keyword-scale") for w in WEIGHT_GRID}
            for pool, run in runs.items()
            if pool != KEYWORD
        },
        "not_reranked": {pool: run["not_reranked"] for pool, run in runs.items()},
        "meaning_candidates": {pool: run["meaning_candidates"] for pool, run in runs.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", action="append", required=True, help="folder:split, a training split")
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--embed-timeout", type=float, default=3600.0)
    parser.add_argument("--output", default=None)
    parser.add_argument("--raw", type=Path, default=None, help="folder for each set's pools, row by row (JSON)")
    args = parser.parse_args()
    with django_stack():
        results = [run_set(*item.split(":"), args.max_queries, args.embed_timeout, args.raw) for item in args.set]
    pools = [str(k) for k in RRF_GRID]
    mean = {
        pool: {str(w): round(sum(r["ndcg@10"][pool][str(w)] for r in results) / len(results), 4) for w in WEIGHT_GRID}
        for pool in [KEYWORD, *pools]
    }
    # Best mean training nDCG@10; ties go to the published constants (k 60, w 0.3), then smaller k.
    best = max(
        ((pool, w) for pool in pools for w in WEIGHT_GRID),
        key=lambda pw: (mean[pw[0]][str(pw[1])], pw == ("60", 0.3), -int(pw[0])),
    )
    report = {
        "benchmark": "hybrid_fusion",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "model": MODEL,
        "rrf_grid": RRF_GRID,
        "weight_grid": WEIGHT_GRID,
        "mean_train_ndcg@10": mean,
        "best": {"rrf_k": int(best[0]), "bm25_weight": best[1], "ndcg@10": mean[best[0]][str(best[1])]},
        "results": results,
    }
    print(report["best"], flush=True)
    write_json(args.output, report)


if __name__ == "__main__":
    main()
