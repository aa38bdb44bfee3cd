"""Semantic candidates at scale: the nearest chunks among 1M stored vectors, timed, against an exact scan.

Builds a collection of --chunks documents of one chunk each, with synthetic unit vectors of 384
dimensions (multilingual-e5-small's) in search_chunkvector, written as the worker writes them
(the migration's schema, the migration's HNSW index where pgvector is there), then times
search.semantic.nearest_documents, the call search_run makes, for --queries query vectors and
compares its first 50 documents with the exact 50 nearest (numpy over the same matrix in memory):
recall@50 of exact.

The vectors: --clusters centres drawn at random on the unit sphere; with --shape clusters each
vector is one centre plus Gaussian noise, normalised (neighbours within a cluster at cosine ~0.6,
across ~0: separate islands, the hard case for a graph index); with --shape topics (the default)
each mixes three centres with random weights before the noise, so regions overlap as documents'
topics do; with --shape fitted each is drawn from a Gaussian with the mean and covariance of
2,000 real multilingual-e5-small passage vectors (the public sets' texts, embedded here), then
normalised: e5's anisotropy and spectrum without its fine structure. The queries are drawn the
same way and are not in the table. Real embeddings are more anisotropic (all of
e5's cosines lie in 0.7 to 0.9); that is not reproduced here. Documents and chunks are inserted
with triggers off (session_replication_role = replica): their BM25 index is not built, since
only the vectors are searched here (bench.fulltext_scale times BM25 at 1M documents).

    # embedded PostgreSQL 16 with pgvector (DATABASE_URL unset), in a folder of its own:
    SEARCHSITE_DATA_DIR=/tmp/semantic-scale .venv/bin/python -m bench.semantic_scale build --chunks 1000000
    SEARCHSITE_DATA_DIR=/tmp/semantic-scale .venv/bin/python -m bench.semantic_scale run --output F.json
    # the exact path (a PostgreSQL without pgvector), at its bound SEARCH_SEMANTIC_EXACT_MAX:
    DATABASE_URL=postgres://.../bench_exact REDIS_URL=... .venv/bin/python -m bench.semantic_scale build --chunks 200000
"""

from __future__ import annotations

import argparse
import struct
import time
from pathlib import Path

import numpy as np

from bench.common import django_stack, machine, summary, write_json

COLLECTION = "bench-semantic"
MODEL = "bench-synthetic-384"
DIMS = 384
SEED = 20261206
NOISE = 0.8  # the norm of a vector's noise against its unit centre
TOPICS = 3  # shape "topics": the centres a vector mixes
FIT_TEXTS = 2_000  # shape "fitted": the real passages the Gaussian is fitted to


def fitted_gaussian(data: Path, texts: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return (mean, a factor of the covariance) of real multilingual-e5-small passage vectors:
    `texts` passages (title + first 1,000 characters, half English, half Chinese) of the public
    sets, embedded by packaged-e5-fp32, the worker's default engine; cached in `data`."""
    cache = data / f"semantic_scale_fit_{texts}.npz"
    if not cache.exists():
        from bench.e5_engines import sample_texts
        from worker.reranker import PACKAGED_E5_FP32, load_model

        groups = sample_texts(texts // 4)
        passages = groups["en passages"] + groups["zh passages"]
        model = load_model(PACKAGED_E5_FP32, device="cpu", max_length=512, batch_size=32).model
        real = np.concatenate([model.passages(passages[i : i + 32]) for i in range(0, len(passages), 32)])
        np.savez(cache, real=real)
    real = np.load(cache)["real"].astype(np.float64)
    mean = real.mean(axis=0)
    covariance = np.cov(real, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.clip(eigenvalues, 0, None)[::-1]
    share = np.cumsum(eigenvalues) / eigenvalues.sum()
    pairs = real @ real.T
    facts = {
        "real vectors": len(real),
        "mean cosine between them": round(float((pairs.sum() - len(real)) / (len(real) * (len(real) - 1))), 3),
        "components for 50 / 90 / 99% of the variance": [int(np.searchsorted(share, q)) + 1 for q in (0.5, 0.9, 0.99)],
    }
    factor = eigenvectors[:, ::-1] * np.sqrt(eigenvalues)
    return mean.astype(np.float32), factor.astype(np.float32), facts


FIT: tuple[np.ndarray, np.ndarray, dict] | None = None


def vectors(count: int, clusters: int, seed: int, shape: str = "topics") -> np.ndarray:
    if shape == "fitted":  # a Gaussian with the mean and covariance of real e5 vectors, normalised
        assert FIT is not None, "fitted_gaussian() first"
        mean, factor, _ = FIT
        rng = np.random.default_rng(seed)
        out = np.empty((count, DIMS), dtype=np.float32)
        for start in range(0, count, 100_000):
            n = min(100_000, count - start)
            block = mean + rng.standard_normal((n, DIMS), dtype=np.float32) @ factor.T
            out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out
    centres = np.random.default_rng(SEED).standard_normal((clusters, DIMS), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)  # the same centres for the table and the queries
    out = np.empty((count, DIMS), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        if shape == "clusters":
            block = centres[rng.integers(0, clusters, n)]
        else:  # a mixture of TOPICS centres, weights from a flat Dirichlet
            weights = rng.dirichlet(np.ones(TOPICS), n).astype(np.float32)
            block = np.einsum("nt,ntd->nd", weights, centres[rng.integers(0, clusters, (n, TOPICS))])
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        block += rng.standard_normal((n, DIMS), dtype=np.float32) * (NOISE / np.sqrt(DIMS))
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + n] = block
    return out


def matrix_path(data: Path) -> Path:
    return data / "semantic_scale_vectors.npy"


def copy_rows(chunk_ids: np.ndarray, matrix: np.ndarray, path: str) -> bytes:
    """One COPY ... (FORMAT BINARY) stream of search_chunkvector rows, built with numpy."""
    from worker.chunk_store import PGVECTOR

    model, key = MODEL.encode(), b"bench"
    if path == PGVECTOR:  # pgvector's binary form: int16 dims, int16 unused, float4 big-endian
        vector_fields = [("vlen", ">i4"), ("vdim", ">i2"), ("vunused", ">i2"), ("values", ">f4", (DIMS,))]
        vector_length = 4 + 4 * DIMS
    else:  # bytea: the float32 bytes search.semantic reads with np.frombuffer (native order)
        vector_fields = [("vlen", ">i4"), ("values", "<f4", (DIMS,))]
        vector_length = 4 * DIMS
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("idlen", ">i4"),
            ("id", ">i8"),
            ("mlen", ">i4"),
            ("model", f"S{len(model)}"),
            ("klen", ">i4"),
            ("key", f"S{len(key)}"),
            ("dlen", ">i4"),
            ("dims", ">i2"),
            *vector_fields,
        ]
    )
    rows = np.zeros(len(chunk_ids), dtype=row)
    rows["fields"], rows["idlen"], rows["id"] = 5, 8, chunk_ids
    rows["mlen"], rows["model"], rows["klen"], rows["key"] = len(model), model, len(key), key
    rows["dlen"], rows["dims"], rows["vlen"], rows["values"] = 2, DIMS, vector_length, matrix
    if path == PGVECTOR:
        rows["vdim"] = DIMS
    return b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + rows.tobytes() + struct.pack(">h", -1)


def cmd_build(args: argparse.Namespace, data: Path) -> dict:
    from django.core.management import call_command
    from django.db import connection

    from search.semantic import vector_path

    global FIT
    if args.shape == "fitted":
        FIT = fitted_gaussian(data, FIT_TEXTS)
    call_command("migrate", verbosity=0)
    path = vector_path()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    matrix = vectors(args.chunks, args.clusters, SEED, args.shape)
    np.save(matrix_path(data), matrix)
    timings["vectors generated s"] = round(time.perf_counter() - started, 1)
    with connection.cursor() as cursor:
        # Before triggers are off: the cascades remove an earlier build's chunks and vectors too.
        cursor.execute("DELETE FROM documents_document WHERE collection = %s", [COLLECTION])
        cursor.execute("SET session_replication_role = replica")
        started = time.perf_counter()
        cursor.execute(
            "INSERT INTO documents_document (collection, external_id, title, body, language, source, metadata, "
            "content_hash, title_search, body_search, created_at, updated_at, markdown) "
            "SELECT %s, g::text, 'synthetic ' || g, '', 'en', '', '{}', g::text, '', '', now(), now(), '' "
            "FROM generate_series(1, %s) g",
            [COLLECTION, args.chunks],
        )
        cursor.execute(
            'INSERT INTO documents_chunk (ordinal, text, start, "end", document_id) '
            "SELECT 0, '', 0, 0, id FROM documents_document WHERE collection = %s ORDER BY id",
            [COLLECTION],
        )
        cursor.execute(
            "SELECT c.id FROM documents_chunk c JOIN documents_document d ON d.id = c.document_id "
            "WHERE d.collection = %s ORDER BY c.id",
            [COLLECTION],
        )
        chunk_ids = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
        timings["documents and chunks inserted s"] = round(time.perf_counter() - started, 1)
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'search_chunkvector_hnsw_384'")
        index = cursor.fetchone()
        if index:  # built once after the rows, as CREATE INDEX on a full table (faster than row by row)
            cursor.execute("DROP INDEX search_chunkvector_hnsw_384")
        started = time.perf_counter()
        for start in range(0, len(chunk_ids), 100_000):
            stream = copy_rows(chunk_ids[start : start + 100_000], matrix[start : start + 100_000], path)
            with cursor.cursor.copy(
                "COPY search_chunkvector (chunk_id, model, key, dims, vector) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.write(stream)
        timings["vectors copied s"] = round(time.perf_counter() - started, 1)
        cursor.execute("SET session_replication_role = origin")
        if index:
            started = time.perf_counter()
            cursor.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
            cursor.execute("SET max_parallel_maintenance_workers = 1")
            cursor.execute(index[0])
            timings["HNSW index built s"] = round(time.perf_counter() - started, 1)
        cursor.execute("ANALYZE documents_document, documents_chunk, search_chunkvector")
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('search_chunkvector'))")
        size = cursor.fetchone()[0]
    return {
        "machine": machine(),
        "path": path,
        "chunks": args.chunks,
        "clusters": args.clusters,
        "shape": args.shape,
        "fit": FIT[2] if FIT else None,
        "timings": timings,
        "search_chunkvector size": size,
    }


def cmd_reindex(args: argparse.Namespace, data: Path) -> dict:
    """Rebuild the HNSW index of an earlier build with other graph options (m, ef_construction)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'search_chunkvector_hnsw_384'")
        definition = cursor.fetchone()[0].split(" WITH (")[0]
        head, _, where = definition.partition(" WHERE ")
        cursor.execute("DROP INDEX search_chunkvector_hnsw_384")
        started = time.perf_counter()
        cursor.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
        options = f" WITH (m = {int(args.m)}, ef_construction = {int(args.ef_construction)})"
        cursor.execute(head + options + (f" WHERE {where}" if where else ""))
        seconds = round(time.perf_counter() - started, 1)
        cursor.execute("SELECT pg_size_pretty(pg_relation_size('search_chunkvector_hnsw_384'))")
        size = cursor.fetchone()[0]
    return {
        "machine": machine(),
        "m": args.m,
        "ef_construction": args.ef_construction,
        "HNSW index built s": seconds,
        "index size": size,
    }


def exact_top(matrix: np.ndarray, query: np.ndarray, ids: np.ndarray, k: int) -> list[int]:
    cosines = matrix @ query
    top = np.argpartition(-cosines, k)[:k]
    return [int(ids[i]) for i in top[np.argsort(-cosines[top], kind="stable")]]


def cmd_run(args: argparse.Namespace, data: Path) -> dict:
    from django.db import connection

    from search import semantic

    global FIT
    if args.shape == "fitted":
        FIT = fitted_gaussian(data, FIT_TEXTS)
    matrix = np.load(matrix_path(data))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.document_id FROM documents_chunk c JOIN documents_document d ON d.id = c.document_id "
            "WHERE d.collection = %s ORDER BY c.id",
            [COLLECTION],
        )
        document_ids = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
    assert len(document_ids) == len(matrix), (len(document_ids), len(matrix))
    queries = vectors(args.queries + args.warmup, args.clusters, SEED + 1, args.shape)
    results = {}
    for chunks in args.chunks_asked:
        times, recalls, paths = [], [], set()
        for number, query in enumerate(queries):
            started = time.perf_counter()
            hits = semantic.nearest_documents(
                query.tolist(), model=MODEL, collection=COLLECTION, chunks=chunks, documents=200
            )
            elapsed = (time.perf_counter() - started) * 1000
            if number < args.warmup:
                continue
            times.append(elapsed)
            paths.add(hits.path)
            exact = exact_top(matrix, query, document_ids, 50)
            recalls.append(len(set(hits.documents[:50]) & set(exact)) / 50)
        below = sum(1 for recall in recalls if recall < 0.9)
        results[f"chunks asked {chunks}"] = {
            "ms": summary(times),
            "recall@50 of exact": {
                "mean": round(float(np.mean(recalls)), 4),
                "p5": round(float(np.percentile(recalls, 5)), 4),
                "min": round(min(recalls), 4),
                "queries below 0.9": below,
            },
            "paths": sorted(paths),
        }
        print(chunks, results[f"chunks asked {chunks}"], flush=True)
    return {
        "machine": machine(),
        "path": semantic.vector_path(),
        "chunks": len(matrix),
        "clusters": args.clusters,
        "shape": args.shape,
        "fit": FIT[2] if FIT else None,
        "queries": args.queries,
        "results": results,
    }


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build")
    build.add_argument("--chunks", type=int, default=1_000_000)
    build.add_argument("--clusters", type=int, default=2_000)
    build.add_argument("--maintenance-work-mem", default="8GB")
    build.add_argument("--shape", choices=["topics", "clusters", "fitted"], default="topics")
    build.add_argument("--output")
    reindex = commands.add_parser("reindex")
    reindex.add_argument("--m", type=int, default=16)
    reindex.add_argument("--ef-construction", type=int, default=64)
    reindex.add_argument("--maintenance-work-mem", default="8GB")
    reindex.add_argument("--output")
    run = commands.add_parser("run")
    run.add_argument("--queries", type=int, default=200)
    run.add_argument("--warmup", type=int, default=20)
    run.add_argument("--clusters", type=int, default=2_000)
    run.add_argument("--shape", choices=["topics", "clusters", "fitted"], default="topics")
    run.add_argument("--chunks-asked", type=int, nargs="+", default=[200, 100, 50])
    run.add_argument("--output")
    args = parser.parse_args()
    with django_stack("searchsite_semantic_scale"):
        data = Path(os.environ.get("SEARCHSITE_DATA_DIR", "/tmp"))
        commands_run = {"build": cmd_build, "reindex": cmd_reindex, "run": cmd_run}
        payload = commands_run[args.command](args, data)
    write_json(args.output, payload)


if __name__ == "__main__":
    main()
