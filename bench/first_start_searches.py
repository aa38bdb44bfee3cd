"""Page searches while a first start embeds the library: how long a person waits, and what they get.

What `make run` does on a first start: a worker serving the offline default (packaged-e5-fp32)
with an empty vector store, then every library chunk text queued for embedding (as
`manage.py embed_library` does). While the worker embeds in the background, the home page's example
searches run one after another through the page (Django's test client: the view, the template,
search_run, the worker client, the real worker), each timed from request to rendered page, until
the worker reports nothing pending (or `--max-seconds`). Then the same searches again, with every
vector stored. Reported: median and p95 page time in each phase, and how the searches ended
(reranked fully, partly with unscored candidates, or fallen back).

Needs the sample library in the database (DATABASE_URL / REDIS_URL, else the embedded dev stack):

    .venv/bin/python -m bench.first_start_searches --output docs/benchmarks/first_start_searches.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import ROOT, django_stack, machine, summary, write_json
from bench.worker_process import running_worker

# The example searches linked from the home page (templates/search/results.html).
HOME_EXAMPLES = ["苹果营养价值", "小米粥的营养", "python snake diet", "jaguar speed in the wild", "mercury toxicity"]
AFTER_SEARCHES = 20


def page_search(client, query: str, number: int) -> tuple[float, str]:
    """Return (seconds, how it ended) for one result page (each from a client address of its own:
    the page's request throttle is not what is measured)."""
    address = f"10.250.{number // 250}.{number % 250 + 1}"
    started = time.perf_counter()
    response = client.get("/search", {"q": query}, REMOTE_ADDR=address)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        return seconds, f"http-{response.status_code}"
    outcome = response.context["outcome"]
    if outcome.is_reranked:
        return seconds, "reranked, some unscored" if outcome.unscored_count else "reranked"
    return seconds, outcome.rerank_status


def run(args: argparse.Namespace) -> dict:
    with django_stack():
        from django.conf import settings
        from django.test import Client
        from django.test.utils import setup_test_environment

        from documents.models import LIBRARY, Document
        from search.vectors import vectors_send
        from search.worker_client import worker_heartbeat

        setup_test_environment()  # the test client's response.context
        settings.RERANK_CACHE_SECONDS = 0  # every search reaches the worker
        client = Client()
        ids = list(Document.objects.filter(collection=LIBRARY).values_list("pk", flat=True))
        if not ids:
            raise SystemExit("the library is empty: run `make run` once, or `manage.py load_sample_library`")
        with tempfile.TemporaryDirectory() as folder:
            extra = {"RERANKER_VECTORS_PATH": str(Path(folder) / "vectors.sqlite3")}
            log = ROOT / ".data" / "bench-first-start-worker.log"
            with running_worker(args.model, log, extra) as queue:
                loaded = time.monotonic()
                queued = vectors_send(document_ids=ids, queue=queue)
                during: list[float] = []
                during_outcomes: Counter[str] = Counter()
                pending_seen = 0
                i = 0
                while time.monotonic() - loaded < args.max_seconds:
                    beat = worker_heartbeat(queue)
                    pending = beat.vectors.pending if beat and beat.vectors else 0
                    pending_seen = max(pending_seen, pending)
                    if i >= len(HOME_EXAMPLES) and pending == 0:
                        break
                    seconds, ended = page_search(client, HOME_EXAMPLES[i % len(HOME_EXAMPLES)], i)
                    during.append(seconds * 1000)
                    during_outcomes[ended] += 1
                    i += 1
                embedding_seconds = time.monotonic() - loaded
                after: list[float] = []
                after_outcomes: Counter[str] = Counter()
                for j in range(AFTER_SEARCHES):
                    seconds, ended = page_search(client, HOME_EXAMPLES[j % len(HOME_EXAMPLES)], i + j)
                    after.append(seconds * 1000)
                    after_outcomes[ended] += 1
        return {
            "machine": machine(),
            "model": args.model,
            "budget_s": settings.RERANK_TIMEOUT,
            "documents": len(ids),
            "chunk_texts_queued": queued,
            "most_pending_seen": pending_seen,
            "embedding_seconds": round(embedding_seconds, 1),
            "during_embedding_page_ms": summary(during),
            "during_embedding_outcomes": dict(during_outcomes),
            "after_embedding_page_ms": summary(after),
            "after_embedding_outcomes": dict(after_outcomes),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="packaged-e5-fp32")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop searching after this long")
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args()
    write_json(args.output, run(args))


if __name__ == "__main__":
    main()
