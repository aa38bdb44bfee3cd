"""Which fusion of BM25's and the vectors' lists makes the best rerank pool: RRF, weighted RRF or a
weighted sum of min-max scaled scores, measured by the pool's Recall@50 and by the reranked nDCG@10.

For each set (a training split to choose the constants, a test split to report them): its corpus
is imported into its own collection and a private worker serving packaged-e5-fp32 embeds every
chunk into PostgreSQL (bench.semantic_recall.missing_vectors; this script waits until none is
left). Each judged query then gets, through the site's own code:

- BM25's top 100 with scores (search.backends.find_candidates, plain: no expansion),
- the 100 documents nearest the query's vector with their best chunk's cosine
  (search.semantic.nearest_documents, the query embedded by the worker's embed_query),
- for every document of the union, the score it lacks: its BM25 for the query
  (search.backends.score_documents, 0 when it holds none of the words) or its cosine
  (search.semantic.document_cosines).

The fusions are then scored offline on each query's first 50 of each list, as search_run takes
them (ties: BM25's order, then the vectors'):

- "rrf w": weighted RRF, w / (60 + BM25 rank) + (1 − w) / (60 + vector rank) (search.services,
  SEARCH_FUSION "rrf"; w = 0.5 is plain RRF, Σ 1 / (60 + rank), the site's fusion before this bench);
- "linear w": w × minmax(BM25) + (1 − w) × minmax(cosine), both scaled over the union (the
  "linear" combination of Elasticsearch's linear retriever with its minmax normalizer, and of
  OpenSearch's normalization processor with min_max and arithmetic_mean);

and for each, Recall@50 of its first 50 (the pool), and nDCG@10 / MRR@5 of that pool reranked by
the offline model's blend (search.services.bm25_blend, weight RERANK_BI_ENCODER_BM25_WEIGHT 0.3,
scaled over the pool, as the worker's bi-encoder reranks).

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m bench.fusion_recall --set cmrc2018:train \
        --set trec-dl-passage:train --max-queries 100 --raw /tmp/fusion-raw \
        --output docs/benchmarks/fusion_recall_train.json

A folder elsewhere is given by its path, and a corpus in another file by --corpus (the sample set:
--set tests/data/sample_eval:test --corpus documents/sample_library/library.jsonl). --rescore
scores the lists kept in --raw again without running anything.
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
POOL = 50  # the rerank pool (SEARCH_K_INITIAL) and each list's share of it
READ = 100  # each list as read and stored, for other shares later
WEIGHTS = [round(0.1 * i, 1) for i in range(11)]
RERANK_WEIGHT = 0.3


def collect(dataset, collection: str, external: dict[int, str]) -> list[dict]:
    """Return per judged query its two lists and every union document's BM25 score and cosine."""
    from search import semantic, worker_client
    from search.backends import find_candidates, score_documents

    queries = []
    for query in dataset.queries:
        if not any(grade > 0 for grade in dataset.qrels.get(query.id, {}).values()):
            continue
        found = find_candidates(query.text, k=READ, collection=collection)
        bm25 = {c.document_id: c.score for c in found.candidates}
        pending = worker_client.send_embed_query(query.text)
        vector = worker_client.read_query_vector(pending, 60.0)
        assert not vector.skipped, vector.skipped
        hits = semantic.nearest_documents(vector.vector, model=vector.model, collection=collection, documents=READ)
        cosine = dict(hits.cosine)
        lacking_bm25 = [i for i in hits.documents if i not in bm25]
        bm25.update(score_documents(query.text, lacking_bm25, collection=collection, relaxed_query=found.relaxed))
        lacking_cosine = [i for i in bm25 if i not in cosine]
        cosine.update(semantic.document_cosines(vector.vector, lacking_cosine, model=vector.model))
        documents = sorted(set(bm25) | set(cosine))
        queries.append(
            {
                "id": query.id,
                "bm25_list": [external[c.document_id] for c in found.candidates],
                "vector_list": [external[i] for i in hits.documents],
                "bm25": {external[i]: round(bm25.get(i, 0.0), 6) for i in documents},
                "cosine": {external[i]: cosine.get(i) for i in documents},
            }
        )
    return queries


def minmax(values: dict[str, float]) -> dict[str, float]:
    if not values:
        return {}
    low, high = min(values.values()), max(values.values())
    if high - low < 1e-12:
        return dict.fromkeys(values, 1.0)
    return {key: (value - low) / (high - low) for key, value in values.items()}


def ranked(scores: dict[str, float], first_seen: list[str]) -> list[str]:
    position = {key: i for i, key in enumerate(first_seen)}
    return sorted(scores, key=lambda key: (-round(scores[key], 9), position[key]))


def fuse(query: dict, method: str, weight: float | None = None, share: int = POOL) -> list[str]:
    """Return the pool (first POOL) of one fusion of the query's first `share` of each list."""
    bm25_list, vector_list = query["bm25_list"][:share], query["vector_list"][:share]
    seen = list(dict.fromkeys(bm25_list + vector_list))
    if method == "keyword":
        return bm25_list[:POOL]
    if method == "vector":
        return vector_list[:POOL]
    scores: dict[str, float] = dict.fromkeys(seen, 0.0)
    if method == "rrf":
        for rank, key in enumerate(bm25_list, start=1):
            scores[key] += weight / (60 + rank)
        for rank, key in enumerate(vector_list, start=1):
            scores[key] += (1 - weight) / (60 + rank)
    elif method == "linear":
        lexical = minmax({key: query["bm25"].get(key, 0.0) for key in seen})
        known = {key: query["cosine"][key] for key in seen if query["cosine"].get(key) is not None}
        meaning = minmax(known)
        scores = {key: weight * lexical[key] + (1 - weight) * meaning.get(key, 0.0) for key in seen}
    else:
        raise ValueError(method)
    return ranked(scores, seen)[:POOL]


def reranked(query: dict, pool: list[str]) -> list[str]:
    """The pool in the offline model's order (search.services.bm25_blend, rounded to 4 places, ties: pool order)."""
    from search.services import bm25_blend

    index = {key: i for i, key in enumerate(pool)}
    scored = {key: query["cosine"][key] for key in pool if query["cosine"].get(key) is not None}
    blended = bm25_blend({key: query["bm25"].get(key, 0.0) for key in scored}, scored, weight=RERANK_WEIGHT)
    return sorted(pool, key=lambda key: (key not in blended, -round(blended.get(key, 0.0), 4), index[key]))


def methods() -> list[tuple[str, str, float | None]]:
    grid = [("keyword", "keyword", None), ("vector", "vector", None)]
    grid += [(f"rrf {w}", "rrf", w) for w in WEIGHTS[1:-1]]
    grid += [(f"linear {w}", "linear", w) for w in WEIGHTS]
    return grid


def score(queries: list[dict], qrels: dict) -> dict[str, dict[str, float]]:
    from evaluation import runner as evaluation

    results = {}
    for name, method, weight in methods():
        recall, ndcg, mrr = [], [], []
        for query in queries:
            judged = qrels[query["id"]]
            relevant = {key for key, grade in judged.items() if grade > 0}
            pool = fuse(query, method, weight)
            recall.append(len(relevant & set(pool)) / len(relevant))
            order = reranked(query, pool)
            ndcg.append(evaluation.ndcg(order, judged, depth=10))
            mrr.append(next((1 / r for r, key in enumerate(order[:5], start=1) if judged.get(key, 0) > 0), 0.0))
        results[name] = {
            "recall@50": round(sum(recall) / len(recall), 4),
            "reranked_ndcg@10": round(sum(ndcg) / len(ndcg), 4),
            "reranked_mrr@5": round(sum(mrr) / len(mrr), 4),
            "per_query_recall": [round(value, 4) for value in recall],
            "per_query_ndcg": [round(value, 4) for value in ndcg],
        }
    return results


def rescore_set(folder: str, split: str, max_queries: int | None, raw_dir: Path, corpus: Path | None = None) -> dict:
    """Score the lists a run kept (--raw) again, without a worker or the set's collection: for a new fusion."""
    from evaluation import runner as evaluation

    dataset = evaluation.dataset_load(directory=DATA / folder, split=split, corpus=corpus, max_queries=max_queries)
    queries = json.loads((raw_dir / f"{Path(folder).name}-{split}.json").read_text())
    return {"set": folder, "split": split, "queries": len(queries), "methods": score(queries, dataset.qrels)}


def run_set(
    folder: str, split: str, max_queries: int | None, embed_timeout: float, raw_dir: Path | None, corpus: Path | None
) -> dict:
    from django.test.utils import override_settings

    from bench.semantic_recall import wait_until_embedded
    from documents.models import Document
    from evaluation import runner as evaluation
    from search import semantic

    dataset = evaluation.dataset_load(directory=DATA / folder, split=split, corpus=corpus, max_queries=max_queries)
    collection = evaluation.collection_name(dataset)
    evaluation.corpus_import(dataset=dataset, collection=collection)
    external = dict(Document.objects.filter(collection=collection).values_list("pk", "external_id"))
    worker = evaluation.worker_start(model=MODEL, languages="en,zh")
    try:
        worker.wait_ready(timeout=300)
        with override_settings(RERANK_QUEUE=worker.queue):
            wait_until_embedded(folder, collection, worker.queue, embed_timeout)
            queries = collect(dataset, collection, external)
    finally:
        worker.stop()
    if raw_dir is not None:
        raw_dir.mkdir(parents=True, exist_ok=True)
        (raw_dir / f"{Path(folder).name}-{split}.json").write_text(json.dumps(queries, ensure_ascii=False) + "\n")
    return {
        "set": folder,
        "split": split,
        "queries": len(queries),
        "documents": len(external),
        "path": semantic.vector_path(),
        "methods": score(queries, dataset.qrels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", action="append", required=True, help="folder:split, e.g. cmrc2018:train")
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--embed-timeout", type=float, default=7200.0)
    parser.add_argument("--raw", type=Path, default=None, help="folder for each set's lists and scores (JSON)")
    parser.add_argument("--corpus", type=Path, default=None, help="the corpus file, when not the set's corpus.jsonl")
    parser.add_argument("--rescore", action="store_true", help="score the lists kept in --raw again, no run")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    with django_stack():
        if args.rescore:
            results = [rescore_set(*item.split(":"), args.max_queries, args.raw, args.corpus) for item in args.set]
        else:
            options = (args.max_queries, args.embed_timeout, args.raw, args.corpus)
            results = [run_set(*item.split(":"), *options) for item in args.set]
    mean = {
        name: {
            metric: round(sum(r["methods"][name][metric] for r in results) / len(results), 4)
            for metric in ("recall@50", "reranked_ndcg@10", "reranked_mrr@5")
        }
        for name, _, _ in methods()
    }
    for name, figures in mean.items():
        print(f"{name:12} {figures}", flush=True)
    write_json(
        args.output,
        {
            "benchmark": "fusion_recall",
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d"),
            "model": MODEL,
            "pool": POOL,
            "mean": mean,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
