"""Load: concurrent clients searching the site started the `make run` way, for a bounded time.

Starts `python -m searchsite.devstack run` (embedded PostgreSQL and Redis, the sample library, the
rerank worker and the web server, exactly as `make run`) on a free loopback port, with a rerank
queue of its own and the anonymous throttles lifted (every client is 127.0.0.1). Then N client
threads send the sample queries, alternating the API and the result page, until the duration is
over; every request has a timeout, so the run always ends. Meanwhile the resident memory (RSS) of
the web and worker processes is sampled. At the end the site is stopped (SIGTERM to the devstack
process, which stops what it started) and a summary is printed and written as JSON.

    .venv/bin/python -m bench.load_search --clients 16 --seconds 180 --output /tmp/load.json

Errors: any answer other than 200, or no answer within the request timeout. A search that falls
back to the full-text order (reranker busy or slow) is an answer, counted by its rerank status.
"""

from __future__ import annotations

import argparse
import contextlib
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

import psutil

from bench.common import ROOT, machine, sample_queries, summary, write_json
from common.processes import ChildExited, free_port, start_group, stop_group, wait_until_ready

READY_SECONDS = 600.0  # first start: migrate, load the sample library, load the model
REQUEST_TIMEOUT_SECONDS = 30.0
RSS_EVERY_SECONDS = 5.0
STOP_SECONDS = 30.0
# The page says which fallback happened in its notice; the API says it in rerank_status.
PAGE_STATUSES = {
    "did not answer within": "timeout",
    "The reranker is busy": "busy",
    "Not reranked:": "skipped",
    "Reranking is unavailable": "unavailable",
    "The reranker reported an error": "error",
}


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def start_site(port: int, log_path: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        PORT=str(port),
        RERANK_QUEUE=f"rerank-load-{os.getpid()}",
        SEARCH_ANON_THROTTLE="1000000/min",
        SEARCH_PAGE_ANON_THROTTLE="1000000/min",
        DOCUMENT_PAGE_ANON_THROTTLE="1000000/min",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    return start_group([sys.executable, "-m", "searchsite.devstack", "run"], env=env, cwd=ROOT, log_path=log_path)


def wait_until_reranking(base: str, site: subprocess.Popen) -> dict:
    """Return the first search's answer once the worker reranks (or says why it does not)."""

    def answer() -> dict | None:
        with contextlib.suppress(OSError):
            status, body = get(f"{base}/api/v1/search?q=apple+nutrition+facts")
            if status == 200:
                found = json.loads(body)
                if found["rerank_status"] != "timeout":
                    return found
        return None

    try:
        first = wait_until_ready(site, answer, timeout=READY_SECONDS, interval=2)
    except ChildExited:
        raise SystemExit(f"the site exited with {site.returncode}; see its log") from None
    if first is None:
        raise SystemExit(f"the site did not rerank within {READY_SECONDS:.0f} s")
    return first


def site_processes(site: subprocess.Popen) -> dict[str, psutil.Process]:
    """Return the web server and the rerank worker among the devstack's children."""
    found = {}
    for child in psutil.Process(site.pid).children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:  # a child that has just exited (make run's one-off embed_library)
            continue
        if "runserver" in command:
            found["web"] = child
        elif "celery" in command and " worker" in command:
            found["worker"] = child
    return found


def rss_mb(process: psutil.Process) -> float:
    """Return the process's resident memory with its children's, in MB."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return round(total / 1024 / 1024, 1)


def run_load(base: str, clients: int, seconds: float, processes: dict[str, psutil.Process]) -> dict:
    queries = sample_queries()
    records: list[dict] = []
    samples: list[dict] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        turn = number
        while time.monotonic() < stop_at:
            query = queries[turn % len(queries)]
            kind = "api" if turn % 2 == 0 else "page"
            path = "/api/v1/search" if kind == "api" else "/search"
            url = f"{base}{path}?{urllib.parse.urlencode({'q': query})}"
            started = time.perf_counter()
            try:
                status, body = get(url)
            except OSError as error:
                status, body = 0, type(error).__name__.encode()
            record = {"kind": kind, "status": status, "ms": (time.perf_counter() - started) * 1000}
            record["rerank"] = rerank_status(kind, status, body)
            with lock:
                records.append(record)
            turn += clients

    def sampler() -> None:
        started = time.monotonic()
        while time.monotonic() < stop_at:
            sample = {"t": round(time.monotonic() - started, 1)}
            for name, process in processes.items():
                with contextlib.suppress(psutil.Error):
                    sample[name] = rss_mb(process)
            samples.append(sample)
            time.sleep(RSS_EVERY_SECONDS)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    threads.append(threading.Thread(target=sampler, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + REQUEST_TIMEOUT_SECONDS + 10)
    return {"records": records, "rss": samples}


def rerank_status(kind: str, status: int, body: bytes) -> str:
    if status != 200:
        return "-"
    if kind == "api":
        return json.loads(body)["rerank_status"]
    html = body.decode(errors="replace")
    return next((name for phrase, name in PAGE_STATUSES.items() if phrase in html), "ok")


def stop(site: subprocess.Popen) -> None:
    """Stop the devstack process we started (its group); it stops the web and worker it started,
    each in a group of its own, in order."""
    stop_group(site, grace=STOP_SECONDS)


def rss_growth(samples: list[dict], name: str) -> dict:
    values = [sample[name] for sample in samples if name in sample]
    if not values:
        return {}
    third = max(1, len(values) // 3)
    first, last = values[:third], values[-third:]
    return {
        "start_mb": values[0],
        "end_mb": values[-1],
        "max_mb": max(values),
        "first_third_mean_mb": round(sum(first) / len(first), 1),
        "last_third_mean_mb": round(sum(last) / len(last), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--output", help="also write the summary (JSON) here")
    parser.add_argument("--log", default=str(ROOT / "test-artifacts" / "load-site.log"))
    args = parser.parse_args()

    Path(args.log).parent.mkdir(exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    site = start_site(port, Path(args.log))
    try:
        first = wait_until_reranking(base, site)
        processes = site_processes(site)
        result = run_load(base, args.clients, args.seconds, processes)
    finally:
        stop(site)
    records = result["records"]
    errors = [r for r in records if r["status"] != 200]
    payload = {
        "machine": machine(),
        "command": f"python -m bench.load_search --clients {args.clients} --seconds {args.seconds:g}",
        "clients": args.clients,
        "seconds": args.seconds,
        "reranker": first.get("reranker"),
        "requests": len(records),
        "requests_per_second": round(len(records) / args.seconds, 2),
        "errors": len(errors),
        "error_statuses": dict(Counter(r["status"] for r in errors)),
        "latency_ms": {
            "all": summary([r["ms"] for r in records]),
            "api": summary([r["ms"] for r in records if r["kind"] == "api"]),
            "page": summary([r["ms"] for r in records if r["kind"] == "page"]),
        },
        "rerank_status": dict(Counter(r["rerank"] for r in records)),
        "rss": {name: rss_growth(result["rss"], name) for name in ("web", "worker")},
        "rss_samples": result["rss"],
    }
    write_json(args.output, payload)


if __name__ == "__main__":
    main()
