"""Bounded work: the document page and full-text highlighting on one very long document.

Uploads a 100,000-line text of the sample library's words (about 3.7 MB, as in issue 12) into the
library through the upload path, then times, in-process with Django's test client and
`search_run` against the configured PostgreSQL and Redis (no worker: RERANK_TIMEOUT is tiny, so
only full-text work is timed):

- the document page with a query that matches nothing (`zzzz`) and with a common word;
- a search whose only candidate is that document (`fulltext_ms`);
- a 500-character query ORing 46 common words at k_initial 200 (`fulltext_ms`).

With --compare-old the searches run a second time with the highlighting of commit c91f927 (before
issue 12: every word of every chunk stemmed, no scan budget) put in place of today's where
search.services and search.passages use it. The document is deleted afterwards.

    .venv/bin/python -m bench.bounded_pages --compare-old --output /tmp/bounded.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import time
import types
from collections import Counter

from bench.common import LIBRARY_FILE, ROOT, django_stack, machine, write_json

LINES = 100_000
WORDS_PER_LINE = 6
RUNS = 3
OLD_COMMIT = "c91f927"
COMMON_WORDS = 46


def library_words() -> list[str]:
    words: list[str] = []
    for line in LIBRARY_FILE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        words += re.findall(r"[A-Za-z]{3,}", record.get("content") or record.get("text") or "")
    return words


def old_highlight() -> types.ModuleType:
    """Return search/highlight.py as it was at OLD_COMMIT, as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:search/highlight.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("old_highlight")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, "old_highlight.py", "exec"), module.__dict__)  # noqa: S102 - our own file from git
    return module


def timed(call, runs: int = RUNS) -> float:
    """Return the median milliseconds of `runs` calls."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 1)


def searches(unique: str, common_query: str) -> dict:
    from search.services import search_run

    def fulltext_ms(query: str, k_initial: int) -> float:
        samples = [search_run(query=query, k_initial=k_initial).timings["fulltext_ms"] for _ in range(RUNS)]
        return round(statistics.median(samples), 1)

    return {
        "one_candidate_fulltext_ms": fulltext_ms(unique, 50),
        "46_common_words_k200_fulltext_ms": fulltext_ms(common_query, 200),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare-old", action="store_true")
    parser.add_argument("--output")
    args = parser.parse_args()
    with django_stack():
        from django.conf import settings
        from django.test import Client

        from documents.ingest import ingest_bytes
        from documents.models import Document
        from documents.services import documents_delete
        from search.throttling import DocumentPageThrottle

        settings.RERANK_TIMEOUT = 0.05
        settings.ALLOWED_HOSTS = ["testserver"]
        words = library_words()
        rng = random.Random(12)
        unique = "zanzibarword"
        lines = [" ".join(rng.choice(words) for _ in range(WORDS_PER_LINE)) for _ in range(LINES)]
        lines[1_000] += f" {unique}"  # within the indexed part of the body (MAX_INDEXED_CHARS)
        data = "\n".join(lines).encode()
        report = ingest_bytes("bench-long.txt", data)
        document = Document.objects.get(pk=report.document_ids[0])
        common = [word for word, _ in Counter(word.lower() for word in words).most_common(COMMON_WORDS)]
        common_query = " OR ".join(common[:COMMON_WORDS])[:500]
        try:
            client = Client(REMOTE_ADDR="127.0.0.1")
            DocumentPageThrottle.THROTTLE_RATES = {"anon_document_page": "1000000/min"}
            result = {
                "machine": machine(),
                "command": "python -m bench.bounded_pages" + (" --compare-old" if args.compare_old else ""),
                "document": {"bytes": len(data), "lines": LINES, "chunks": document.chunks.count()},
                "document_page_ms": {
                    "q=zzzz": timed(lambda: client.get(f"/documents/{document.pk}", {"q": "zzzz"})),
                    "q=common word": timed(lambda: client.get(f"/documents/{document.pk}", {"q": common[0]})),
                },
                "now": searches(unique, common_query),
            }
            if args.compare_old:
                import search.passages as passages
                import search.services as services

                old = old_highlight()
                saved = (services.query_terms, services.snippet, passages.count_matches, passages.snippet)
                services.query_terms, services.snippet = old.query_terms, old.snippet
                passages.count_matches, passages.snippet = old.count_matches, old.snippet
                try:
                    result[f"before ({OLD_COMMIT} highlighting)"] = searches(unique, common_query)
                finally:
                    services.query_terms, services.snippet, passages.count_matches, passages.snippet = saved
        finally:
            documents_delete(documents=[document])
        write_json(args.output, result)


if __name__ == "__main__":
    main()
