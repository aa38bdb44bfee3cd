"""Celery hop: what a rerank through the worker costs beyond the same call in-process.

A real worker (worker.command: threads pool, batching thread) serves a queue of its own
on the embedded Redis; the same small rerank (one query, a few short texts, so the model's time
is small next to the hop) runs alternately through search.worker_client and in-process through
the same batching code. Overhead = median(through the worker) - median(in-process).

    .venv/bin/python -m bench.celery_hop --calls 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import TINY_MODEL, django_stack, machine, summary, write_json

TEXTS = [["Apples are rich in fibre."], ["The iPhone launch."], ["Pythons eat rodents."], ["Java coffee."]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(TINY_MODEL))
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--output")
    args = parser.parse_args()

    with django_stack():
        from django.conf import settings

        from search import worker_client
        from worker.batching import BatchingReranker
        from worker.reranker import load_model
        from worker.tasks import default_batch_tokens

        local = load_model(args.model, device="cpu", max_length=settings.RERANKER_MAX_LENGTH, batch_size=32)
        engine = BatchingReranker(
            local,
            max_batch_tokens=settings.RERANKER_BATCH_TOKENS or default_batch_tokens("cpu"),
            max_batch_pairs=settings.RERANKER_BATCH_SIZE,
            max_queued_pairs=settings.RERANKER_MAX_QUEUED_PAIRS,
            gather_ms=settings.RERANKER_GATHER_MS,
        )
        log = Path(tempfile.gettempdir()) / "bench-celery-hop-worker.log"
        from bench.worker_process import running_worker

        with running_worker(args.model, log):
            through, inside, plain, worker_model, worker_queue = [], [], [], [], []
            for i in range(args.calls + 5):
                query = f"apple nutrition {i % 7}"
                started = time.perf_counter()
                reply = worker_client.rerank(query, TEXTS, timeout=10)
                hop_ms = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                engine.score_groups(query, TEXTS, deadline=time.monotonic() + 10)
                inside_ms = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                local.score_groups(query, TEXTS)
                plain_ms = (time.perf_counter() - started) * 1000
                if i < 5 or not reply.ok:  # warm-up, or a failed call (counted below)
                    continue
                through.append(hop_ms)
                inside.append(inside_ms)
                plain.append(plain_ms)
                worker_model.append(reply.model_ms or 0.0)
                worker_queue.append(reply.queue_ms or 0.0)
        result = {
            "benchmark": "celery_hop",
            "machine": machine(),
            "model": args.model,
            "calls": args.calls,
            "ok_calls": len(through),
            "through_worker_ms": summary(through),
            "in_process_batching_ms": summary(inside),
            "in_process_direct_ms": summary(plain),
            "worker_reported_model_ms": summary(worker_model),
            "worker_reported_queue_ms": summary(worker_queue),
            "hop_overhead_median_ms": round(statistics.median(through) - statistics.median(inside), 2),
            "hop_overhead_vs_direct_median_ms": round(statistics.median(through) - statistics.median(plain), 2),
        }
        write_json(args.output, result)


if __name__ == "__main__":
    main()
