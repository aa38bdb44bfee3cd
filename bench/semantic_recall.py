"""Candidate Recall@50 of keyword-only, semantic-only and hybrid (RRF) pools, through the site's own code.

For each set: its corpus is imported into its own collection; a private worker serving
packaged-e5-fp32 (multilingual-e5-small) embeds every chunk into PostgreSQL in the background
(this script waits until none is left, printing progress); then each judged query gets

- keyword: the BM25 top 50 (search.backends.find_candidates, as search_run asks for a first page),
- semantic: the 50 documents nearest the query's vector (search.semantic.nearest_documents,
  the query embedded by the worker's embed_query),
- hybrid: both fused by weighted reciprocal rank fusion (search.semantic.reciprocal_rank_fusion,
  k = SEARCH_RRF_K, weights 2w and 2(1 - w), w = SEARCH_FUSION_BM25_WEIGHT), the first 50: the
  rerank pool search_run builds with SEARCH_FUSION "rrf" (bench/fusion_recall.py compares fusions).

Recall@50 = relevant documents (grade > 0) in the list / relevant documents, averaged over queries.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m bench.semantic_recall --set cranfield:test \
        --output docs/benchmarks/semantic_recall_cranfield.json

A folder elsewhere is given by its path, and a corpus in another file by --corpus (the sample set:
--set tests/data/sample_eval:test --corpus documents/sample_library/library.jsonl).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.common import django_stack, machine, write_json

# ../shared/data beside the checkout (/work/main -> /work/shared/data), or SHARED_DATA.
DATA = Path(os.environ.get("SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DEPTH = 50
MODEL = "packaged-e5-fp32"


def missing_vectors(collection: str, model: str) -> tuple[int, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(v.chunk_id) FROM documents_chunk c "
            "JOIN documents_document d ON d.id = c.document_id "
            "LEFT JOIN search_chunkvector v ON v.chunk_id = c.id AND v.model = %s WHERE d.collection = %s",
            [model, collection],
        )
        chunks, stored = cursor.fetchone()
    return chunks, stored


def wait_until_embedded(label: str, collection: str, queue: str, timeout: float) -> tuple[int, float]:
    """Nudge the worker on `queue` to embed and return (chunks, seconds) once every chunk of
    `collection` has a vector of its embedder, printing progress every 15 s; exit past `timeout`."""
    from django.core.cache import cache

    from search import worker_client
    from worker.protocol import Heartbeat

    # The vectors are stored under the embedder's own name (the heartbeat's), not the model asked for.
    embedder = Heartbeat.from_message(cache.get(Heartbeat.key(queue))).embedder
    worker_client.send_texts_to_embed([], queue=queue)  # the nudge the index hook sends
    started = time.monotonic()
    first = None
    while True:
        chunks, stored = missing_vectors(collection, embedder)
        first = stored if first is None else first
        rate = (stored - first) / max(time.monotonic() - started, 1e-6)
        print(f"{label}: {stored}/{chunks} chunk vectors ({rate:.1f}/s)", flush=True)
        if stored >= chunks:
            return chunks, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{label}: still {chunks - stored} chunks without vectors")
        time.sleep(15)


def run_set(folder: str, split: str, max_queries: int | None, embed_timeout: float, corpus: Path | None = None) -> dict:
    from django.conf import settings
    from django.test.utils import override_settings

    from documents.models import Document
    from evaluation import runner as evaluation
    from search import semantic, worker_client
    from search.backends import find_candidates

    dataset = evaluation.dataset_load(directory=DATA / folder, split=split, corpus=corpus, max_queries=max_queries)
    collection = evaluation.collection_name(dataset)
    evaluation.corpus_import(dataset=dataset, collection=collection)
    external = dict(Document.objects.filter(collection=collection).values_list("pk", "external_id"))
    worker = evaluation.worker_start(model=MODEL, languages="en,zh")
    try:
        worker.wait_ready(timeout=300)
        with override_settings(RERANK_QUEUE=worker.queue):
            chunks, embed_seconds = wait_until_embedded(folder, collection, worker.queue, embed_timeout)
            recalls: dict[str, list[float]] = {"keyword": [], "semantic": [], "hybrid": []}
            for query in dataset.queries:
                relevant = {doc for doc, grade in dataset.qrels.get(query.id, {}).items() if grade > 0}
                if not relevant:
                    continue
                bm25 = [c.document_id for c in find_candidates(query.text, k=DEPTH, collection=collection).candidates]
                pending = worker_client.send_embed_query(query.text)
                vector = worker_client.read_query_vector(pending, 60.0)
                assert not vector.skipped, vector.skipped
                hits = semantic.nearest_documents(
                    vector.vector, model=vector.model, collection=collection, documents=DEPTH
                )
                w = settings.SEARCH_FUSION_BM25_WEIGHT
                ranked = semantic.reciprocal_rank_fusion([bm25, hits.documents], weights=[2 * w, 2 * (1 - w)])
                fused = [i for i, _ in ranked][:DEPTH]
                for name, ids in (("keyword", bm25), ("semantic", hits.documents), ("hybrid", fused)):
                    found = {external[i] for i in ids}
                    recalls[name].append(len(found & relevant) / len(relevant))
    finally:
        worker.stop()
    return {
        "set": folder,
        "split": split,
        "queries": len(recalls["keyword"]),
        "documents": len(external),
        "chunks": chunks,
        "path": semantic.vector_path(),
        "embedding_seconds": round(embed_seconds, 1),
        "recall_at_50": {name: round(sum(values) / len(values), 3) for name, values in recalls.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", action="append", required=True, help="folder:split, e.g. cranfield:test")
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--embed-timeout", type=float, default=3600.0)
    parser.add_argument(
        "--corpus", type=Path, default=None, help="corpus file of every --set (evaluate's --corpus; the sample set's)"
    )
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    with django_stack():
        results = []
        for item in args.set:
            folder, split = item.split(":")
            result = run_set(folder, split, args.max_queries, args.embed_timeout, args.corpus)
            print(result, flush=True)
            results.append(result)
        write_json(args.output, {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "results": results})


if __name__ == "__main__":
    main()
