"""Rerank flood: does one anonymous client posting huge rerank requests starve the site's own searches?

Starts the site the `make run` way (bench.load_search.start_site: the configured services, the
worker with its default configuration, the development server) once per configuration: the
rerank API's per-client budget at its defaults, and lifted (as before it existed). In each, FLOOD
threads post the largest request the API accepts (200 documents of 20,000 characters, every one
new) to /api/v1/rerank as fast as they are answered (with --polite, waiting out each Retry-After, so the
flood's own CPU does not crowd the machine), for --seconds; meanwhile one result-page search
every PAGE_EVERY_SECONDS records whether it was reranked. The worker's resident memory is sampled
before, during and after the flood. The site is stopped after each configuration.

    .venv/bin/python -m bench.rerank_flood --seconds 60 --output /tmp/flood.json
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

from bench.common import ROOT, machine, write_json
from bench.load_search import (
    rerank_status,
    rss_mb,
    site_processes,
    start_site,
    stop,
    wait_until_reranking,
)
from common.processes import free_port

FLOOD = 3
DOCUMENTS, CHARS = 200, 20_000
PAGE_EVERY_SECONDS = 8.0
PAGE_QUERIES = ["apple nutrition facts", "python snake diet", "jaguar speed in the wild", "mercury toxicity"]
AFTER_SECONDS = 60.0
# Seconds to wait for the worker to embed the library's chunks before the flood starts.
VECTORS_WAIT_SECONDS = 1200
RSS_EVERY_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 60.0
# The anonymous request rate stays at its default (the flood of the issue kept under it).
REQUEST_RATE = {"SEARCH_ANON_THROTTLE": "60/min"}
CONFIGURATIONS = {
    "budget (defaults)": REQUEST_RATE,
    "no budget (as before)": {
        **REQUEST_RATE,
        "RERANK_API_ANON_PAIRS_PER_MINUTE": "1000000000",
        "RERANK_API_ANON_CHARS_PER_MINUTE": "1000000000000",
    },
}


def post(url: str, body: bytes) -> tuple[int, float]:
    """Return the status and the Retry-After seconds (0 when none) of one POST."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # noqa: S310 - loopback
            response.read()
            return response.status, 0.0
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, float(error.headers.get("Retry-After") or 0)
    except OSError:
        return 0, 0.0


def page_search(base: str, query: str) -> str:
    url = f"{base}/search?{urllib.parse.urlencode({'q': query})}"
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # noqa: S310 - loopback
            return rerank_status("page", response.status, response.read())
    except urllib.error.HTTPError as error:
        return str(error.code)
    except OSError as error:
        return type(error).__name__


def run_flood(base: str, seconds: float, worker, *, polite: bool) -> dict:
    words = ("apple orchard harvest nutrition fibre vitamin " * (CHARS // 40))[: CHARS - 16]
    sent = itertools.count()

    def body() -> bytes:
        # Every document of every request is new: a worker that keeps vectors (packaged-e5) has
        # none for them and embeds each one, as it would for a real client's texts.
        request = next(sent)
        documents = [f"r{request}d{i} {words}" for i in range(DOCUMENTS)]
        return json.dumps({"query": "apple nutrition", "documents": documents}).encode()

    statuses: Counter[int] = Counter()
    pages: list[str] = []
    rss: list[dict] = []
    lock = threading.Lock()
    started = time.monotonic()
    stop_at = started + seconds

    def flood() -> None:
        while time.monotonic() < stop_at:
            status, retry_after = post(f"{base}/api/v1/rerank", body())
            with lock:
                statuses[status] += 1
            if polite and retry_after:
                time.sleep(min(retry_after, max(0.0, stop_at - time.monotonic())))

    def searches() -> None:
        turn = 0
        while time.monotonic() + PAGE_EVERY_SECONDS < stop_at:
            time.sleep(PAGE_EVERY_SECONDS)
            pages.append(page_search(base, PAGE_QUERIES[turn % len(PAGE_QUERIES)]))
            turn += 1

    def sampler() -> None:
        end = stop_at + AFTER_SECONDS
        while time.monotonic() < end:
            with contextlib.suppress(Exception):
                rss.append({"t": round(time.monotonic() - started, 1), "worker_mb": rss_mb(worker)})
            time.sleep(RSS_EVERY_SECONDS)

    baseline = rss_mb(worker)
    threads = [threading.Thread(target=flood, daemon=True) for _ in range(FLOOD)]
    threads += [threading.Thread(target=searches, daemon=True), threading.Thread(target=sampler, daemon=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + AFTER_SECONDS + REQUEST_TIMEOUT_SECONDS + 10)
    during = [sample["worker_mb"] for sample in rss if sample["t"] <= seconds]
    after = [sample["worker_mb"] for sample in rss if sample["t"] > seconds]
    return {
        "flood_statuses": {str(code): count for code, count in sorted(statuses.items())},
        "page_searches": dict(Counter(pages)),
        "worker_rss_mb": {
            "before": baseline,
            "max_during": max(during, default=None),
            "end_of_flood": during[-1] if during else None,
            "after_60_s": after[-1] if after else None,
        },
        "rss_samples": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--polite", action="store_true", help="flood threads wait out Retry-After (their own CPU left out)"
    )
    parser.add_argument("--only", choices=sorted(CONFIGURATIONS), help="run one configuration")
    parser.add_argument("--output", help="also write the result (JSON) here")
    parser.add_argument("--log", default=str(ROOT / "test-artifacts" / "flood-site.log"))
    args = parser.parse_args()
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        raise SystemExit("set DATABASE_URL and REDIS_URL: the flood runs against configured services, as load_search")
    Path(args.log).parent.mkdir(exist_ok=True)
    results = {}
    for name, env in CONFIGURATIONS.items():
        if args.only and name != args.only:
            continue
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        site = start_site(port, Path(args.log), extra_env=env)
        try:
            first = wait_until_reranking(base, site)
            # Page searches are measured on a library whose chunk vectors are all there.
            subprocess.run(
                [sys.executable, "manage.py", "vectors_progress", "--timeout", str(VECTORS_WAIT_SECONDS)],
                cwd=ROOT,
                env={**os.environ, "RERANK_QUEUE": f"rerank-load-{os.getpid()}"},
                check=True,
            )
            worker = site_processes(site)["worker"]
            results[name] = run_flood(base, args.seconds, worker, polite=args.polite)
            results[name]["reranker"] = first.get("reranker")
        finally:
            stop(site)
        print(name, json.dumps({key: value for key, value in results[name].items() if key != "rss_samples"}))
    write_json(
        args.output,
        {"machine": machine(), "command": " ".join(["python -m bench.rerank_flood", *sys.argv[1:]]), **results},
    )


if __name__ == "__main__":
    main()
