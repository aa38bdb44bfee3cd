"""What every benchmark shares: the machine line, percentiles, the sample searches, the stack."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_FILE = ROOT / "documents" / "sample_library" / "library.jsonl"
QUERIES_FILE = ROOT / "tests" / "data" / "sample_eval" / "queries.jsonl"
TINY_MODEL = ROOT / ".data" / "test-models" / "tiny-cross-encoder"
# Chunks per document sent to the reranker at most (search.passages.MAX_CHUNKS_PER_DOCUMENT).
MAX_CHUNKS_PER_DOCUMENT = 8


def machine() -> str:
    """Return "CPU model, N cores, Python, date, load average" for the results table."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    load = os.getloadavg()[0]
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {date.today().isoformat()}, "
        f"load average {load:.1f} when the run ended (other people's jobs share this machine)"
    )


def percentile(values: list[float], share: float) -> float:
    """Return the `share` (0..1) percentile by linear interpolation (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.50), 2),
        "p95": round(percentile(values, 0.95), 2),
        "p99": round(percentile(values, 0.99), 2),
        "mean": round(statistics.fmean(values), 2) if values else 0.0,
    }


def sample_queries() -> list[str]:
    """Return the judged sample queries (Chinese, English and mixed)."""
    return [json.loads(line)["text"] for line in QUERIES_FILE.read_text().splitlines() if line.strip()]


def sample_searches(count: int, *, k: int, chunk_tokens: int, seed: int = 7) -> list[tuple[str, list[list[str]]]]:
    """Return `count` (query, groups) searches over the sample library, `k` documents each.

    Each document is chunked as ingest does and sent as at most 8 "title\\nchunk" texts, the
    shape search_run sends; documents are drawn at random (seeded), so lengths mix zh and en.
    """
    from documents.chunking import split_into_chunks

    documents = [json.loads(line) for line in LIBRARY_FILE.read_text().splitlines() if line.strip()]
    groups = []
    for document in documents:
        chunks = [span.text for span in split_into_chunks(document["content"], chunk_tokens)]
        groups.append([f"{document['title']}\n{text}" for text in chunks[:MAX_CHUNKS_PER_DOCUMENT]])
    queries = sample_queries()
    rng = random.Random(seed)
    return [(queries[i % len(queries)], rng.sample(groups, k)) for i in range(count)]


def write_json(path: str | None, payload: dict) -> None:
    """Print `payload` as JSON and also write it to `path` when given."""
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    print(text)
    if path:
        Path(path).write_text(text + "\n")


@contextlib.contextmanager
def django_stack(database: str = "searchsite") -> Iterator[dict[str, str]]:
    """Set up Django against DATABASE_URL / REDIS_URL, or the embedded dev stack when unset."""
    sys.path.insert(0, str(ROOT))
    from searchsite.devstack import services

    with services(database) as env:
        os.environ.update({key: env[key] for key in ("DATABASE_URL", "REDIS_URL")})
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
        import django

        django.setup()
        yield env
