"""Limits before work in the rerank APIs (issue 25, findings 1 and 2): the worst refused requests
and the worst accepted one, timed in-process with Django's test client against the configured
PostgreSQL and Redis (no worker is needed: every refusal comes before the worker is asked).

For each request: the body's size, the status, the median wall time and CPU time of RUNS runs,
and the peak of Python's allocations (tracemalloc, one more run). The accepted request is timed
up to the call to the worker (parse, limits, validation, joined texts), since the worker's own
time is measured in bench/reranker_throughput.py.

    .venv/bin/python -m bench.rerank_limits --output /tmp/rerank_limits.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc

from bench.common import django_stack, machine, write_json

RUNS = 3


def requests() -> dict[str, tuple[str, bytes]]:
    """Return {name: (path, body)}: the refused requests of the probe, and the largest accepted."""
    from search.rerank_api import MAX_RANK_FIELDS
    from search.reranking import MAX_RERANK_DOCUMENTS, MAX_RERANK_TEXT_CHARS

    def body(value: dict) -> bytes:
        return json.dumps(value).encode()

    long_text = "word " * (MAX_RERANK_TEXT_CHARS // 5)
    return {
        "refused: 4,000,000 one-character documents (v1)": (
            "/api/v1/rerank",
            body({"query": "q", "documents": ["x"] * 4_000_000}),
        ),
        "refused: 4,000,000 one-character texts (TEI)": (
            "/api/tei/rerank",
            body({"query": "q", "texts": ["x"] * 4_000_000}),
        ),
        "refused: 200 objects x 5,000 rank_fields (v1, the probe's N x M)": (
            "/api/v1/rerank",
            body({"query": "q", "documents": [{"a": "x" * 100}] * 200, "rank_fields": ["a"] * 5_000}),
        ),
        "refused: 200 objects of 20,000 characters read 50 times (v2)": (
            "/api/v2/rerank",
            body(
                {
                    "query": "q",
                    "documents": [{"a": "x" * MAX_RERANK_TEXT_CHARS}] * MAX_RERANK_DOCUMENTS,
                    "rank_fields": ["a"] * MAX_RANK_FIELDS,
                }
            ),
        ),
        "refused: 201 invalid documents (v1)": ("/api/v1/rerank", body({"query": "q", "documents": [42] * 201})),
        "accepted: 200 documents of 20,000 characters (v1, up to the worker)": (
            "/api/v1/rerank",
            body({"query": "q" * 2_000, "documents": [long_text] * MAX_RERANK_DOCUMENTS, "return_documents": True}),
        ),
    }


def accepted_work(path: str, raw: bytes) -> int:
    """Do what the view does for an accepted request before it asks the worker; return 200."""
    import io

    from search.rerank_api import CohereRerankInputSerializer, CohereRerankParser, cohere_limits_check

    data = CohereRerankParser().parse(io.BytesIO(raw), "application/json", {})
    cohere_limits_check(data)
    params = CohereRerankInputSerializer(data=data)
    params.is_valid(raise_exception=True)
    assert len(params.validated_data["texts"]) == 200
    return 200


def measure(send) -> dict:
    walls, cpus = [], []
    for _ in range(RUNS):
        wall, cpu = time.perf_counter(), time.process_time()
        status = send()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    tracemalloc.start()
    send()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "status": status,
        "wall_ms_median": round(statistics.median(walls), 1),
        "cpu_ms_median": round(statistics.median(cpus), 1),
        "peak_python_mb": round(peak / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output")
    args = parser.parse_args()
    with django_stack():
        from django.conf import settings
        from django.test import Client

        from search.throttling import SearchThrottle

        settings.ALLOWED_HOSTS = ["testserver"]
        settings.RERANK_API_ANON_PAIRS_PER_MINUTE = 10**9
        settings.RERANK_API_ANON_CHARS_PER_MINUTE = 10**12
        SearchThrottle.THROTTLE_RATES = {"anon_search": "1000000/min"}
        client = Client(REMOTE_ADDR="198.51.100.77")
        results = {}
        for name, (path, raw) in requests().items():
            if name.startswith("accepted"):
                send = lambda path=path, raw=raw: accepted_work(path, raw)  # noqa: E731
            else:
                send = lambda path=path, raw=raw: client.post(path, raw, content_type="application/json").status_code  # noqa: E731
            results[name] = {"body_mb": round(len(raw) / 1e6, 2), **measure(send)}
    write_json(args.output, {"machine": machine(), "runs": RUNS, "results": results})


if __name__ == "__main__":
    main()
