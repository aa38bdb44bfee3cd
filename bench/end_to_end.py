"""End to end: latency of /api/v1/search and of the result page under concurrent clients.

Starts the site on loopback (gunicorn, threads) and a real rerank worker (worker.command,
or `--pool solo` for the one-search-at-a-time worker of before) with the tiny CrossEncoder, on
the embedded PostgreSQL (the sample library) and Redis. Each client thread sends different
sample queries, alternating API and page, for a bounded number of requests and seconds per
level. Per request: latency, and the server's breakdown (full-text ms, queue wait, model ms,
render: the page's Server-Timing header; for the API, latency minus the search's total).
The rerank cache is off unless `--cache` (then each level runs twice: cold, then warm).

    .venv/bin/python -m bench.end_to_end --clients 1 4 16 --output /tmp/e2e.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from bench.common import ROOT, TINY_MODEL, django_stack, machine, sample_queries, summary, write_json
from common.processes import ChildExited, free_port, start_group, stop_group, wait_until_ready

# Gunicorn as in docker-compose.yml, scaled to this machine: processes x threads.
WEB_WORKERS = 2
WEB_THREADS = 8
READY_SECONDS = 120.0


def start_web(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    """Start gunicorn in a process group of its own; return it once /healthz answers."""
    command = [
        sys.executable, "-m", "gunicorn", "searchsite.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(WEB_WORKERS), "--threads", str(WEB_THREADS),
        "--timeout", "60",
    ]  # fmt: skip
    process = start_group(command, env=env, cwd=ROOT, log_path=log_path)
    try:
        answered = wait_until_ready(process, lambda: healthy(port), timeout=READY_SECONDS, interval=0.2)
    except ChildExited:
        raise RuntimeError(f"the web server exited; see {log_path}") from None
    if not answered:
        stop_group(process)
        raise RuntimeError(f"the web server did not answer; see {log_path}")
    return process


def healthy(port: int) -> bool:
    """Return whether the web server on `port` answers its health check."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def server_timing(header: str) -> dict[str, float]:
    return {name: float(value) for name, value in re.findall(r"(\w+);dur=([\d.]+)", header or "")}


def response_status(header: str) -> str:
    """Return the page's rerank status from its Server-Timing header ("ok", "timeout", ...)."""
    match = re.search(r'reranking;desc="(\w+)', header or "")
    return match.group(1) if match else ""


def one_request(base: str, query: str, page: bool, k_initial: int | None) -> dict:
    path = "/search" if page else "/api/v1/search"
    params = {"q": query, **({"k_initial": k_initial} if k_initial else {})}
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (our own loopback URL)
        body = response.read()
        status = response.status
        headers = response.headers.get("Server-Timing", "")
        timing = server_timing(headers)
    latency = (time.perf_counter() - started) * 1000
    if page:
        return {
            "latency_ms": latency,
            "status": status,
            "fulltext_ms": timing.get("fulltext"),
            "queue_ms": timing.get("queue"),
            "model_ms": timing.get("model"),
            "render_ms": timing.get("render"),
            "reranked": response_status(headers) == "ok",
        }
    data = json.loads(body)
    timings = data.get("timings") or {}
    return {
        "latency_ms": latency,
        "status": status,
        "fulltext_ms": timings.get("fulltext_ms"),
        "queue_ms": timings.get("queue_ms"),
        "model_ms": timings.get("model_ms"),
        "render_ms": latency - (timings.get("total_ms") or 0.0),
        "reranked": data.get("rerank_status") == "ok",
    }


def run_level(
    base: str, clients: int, queries: list[str], max_requests: int, max_seconds: float, k_initial: int | None = None
) -> list[dict]:
    """Return one record per request: `clients` threads, each its own queries, bounded."""
    records: list[dict] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + max_seconds
    per_client = max(1, max_requests // clients)

    def client(number: int) -> None:
        for i in range(per_client):
            if time.monotonic() > stop_at:
                return
            query = queries[(number * per_client + i) % len(queries)]
            page = (number + i) % 2 == 1
            try:
                record = one_request(base, query, page, k_initial)
            except OSError as error:
                record = {"error": f"{type(error).__name__} {getattr(error, 'code', '')}".strip()}
            record["endpoint"] = "page" if page else "api"
            with lock:
                records.append(record)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records


def digest(records: list[dict]) -> dict:
    out = {}
    for endpoint in ("api", "page"):
        rows = [r for r in records if r.get("endpoint") == endpoint and "latency_ms" in r]
        if not rows:
            continue

        def values(name: str, rows=rows) -> list[float]:
            return [r[name] for r in rows if r.get(name) is not None]

        out[endpoint] = {
            "latency_ms": summary(values("latency_ms")),
            "fulltext_ms": summary(values("fulltext_ms")),
            "queue_ms": summary(values("queue_ms")),
            "model_ms": summary(values("model_ms")),
            "render_ms": summary(values("render_ms")),
            "reranked": f"{sum(1 for r in rows if r['reranked'])}/{len(rows)}",
        }
    out["errors"] = sum(1 for r in records if "error" in r)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(TINY_MODEL))
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--pool", choices=["threads", "solo"], default="threads")
    parser.add_argument("--cpu-dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--k-initial", type=int, help="candidates reranked per search (default: SEARCH_K_INITIAL)")
    parser.add_argument("--timeout", type=float, help="RERANK_TIMEOUT of the site (default: its own, 3 s)")
    parser.add_argument("--requests", type=int, default=48, help="requests per level at most")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per level at most")
    parser.add_argument("--cache", action="store_true", help="rerank cache on; each level runs cold, then warm")
    parser.add_argument("--output")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    with django_stack() as env:
        from django.core.management import call_command

        from bench.worker_process import running_worker

        call_command("migrate", "--noinput", verbosity=0)
        call_command("load_sample_library", "--if-empty")
        cache_seconds = "3600" if args.cache else "0"
        extra = {
            "RERANKER_MODEL": args.model,
            "RERANK_CACHE_SECONDS": cache_seconds,
            "RERANKER_CPU_DTYPE": args.cpu_dtype,
        }
        os.environ.update(extra)
        logs = Path(tempfile.gettempdir())
        with running_worker(args.model, logs / "bench-e2e-worker.log", extra, pool=args.pool) as queue:
            port = args.port or free_port()
            web_env = {
                **env,
                **extra,
                "RERANK_QUEUE": queue,
                "SEARCH_ANON_THROTTLE": "1000000/min",
                "SEARCH_PAGE_ANON_THROTTLE": "1000000/min",
                "DEBUG": "1",
                "LOG_LEVEL": "WARNING",
                **({"RERANK_TIMEOUT": str(args.timeout)} if args.timeout else {}),
            }
            web = start_web(web_env, port, logs / "bench-e2e-web.log")
            try:
                base = f"http://127.0.0.1:{port}"
                queries = sample_queries()
                run_level(base, 2, queries[:4], 4, 60)  # warm-up: first queries load caches
                levels = []
                for clients in args.clients:
                    passes = ["cold", "warm"] if args.cache else ["cold"]
                    for name in passes:
                        started = time.perf_counter()
                        records = run_level(base, clients, queries, args.requests, args.seconds, args.k_initial)
                        level = {"clients": clients, "pass": name, "requests": len(records)}
                        level["seconds"] = round(time.perf_counter() - started, 1)
                        level.update(digest(records))
                        levels.append(level)
                        print(json.dumps(level), flush=True)
            finally:
                stop_group(web, on_kill=lambda: print("bench web did not stop; killing it", flush=True))
    write_json(
        args.output,
        {
            "benchmark": "end_to_end",
            "machine": machine(),
            "model": args.model,
            "worker_pool": args.pool,
            "cpu_dtype": args.cpu_dtype,
            "k_initial": args.k_initial or "SEARCH_K_INITIAL (50)",
            "rerank_timeout_s": args.timeout or "RERANK_TIMEOUT (3)",
            "cache": args.cache,
            "web": f"gunicorn {WEB_WORKERS} processes x {WEB_THREADS} threads, DEBUG=1",
            "levels": levels,
        },
    )


if __name__ == "__main__":
    main()
