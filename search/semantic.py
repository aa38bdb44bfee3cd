"""Semantic candidates: the library chunks nearest the query's vector, and their fusion with BM25's.

The query is embedded once by the worker (worker.tasks.embed_query, sent while BM25 runs); its
vector finds the nearest chunk vectors in PostgreSQL (search_chunkvector, written by the worker:
worker.chunk_store), grouped into documents by their best chunk. Two paths, picked by the column's
type (the migration made it pgvector's where the server has the extension):

- "pgvector": HNSW (cosine) over the model's vectors, hnsw.ef_search raised to the chunks asked
  for; the filters (collection, language, facets) apply to what the index returns, and when they
  leave too few an exact `<=>` scan of the filtered chunks (in PostgreSQL) stands in.
- "exact": the filtered chunks' float32 vectors are read and scored in numpy, at most
  SEARCH_SEMANTIC_EXACT_MAX of them; a collection with more is not scanned (BM25 alone, and
  /api/v1/status says so).

The two ranked lists are fused (search.services, SEARCH_FUSION) by weighted reciprocal rank fusion
(Cormack, Clarke and Büttcher, 2009, with a weight per list): score(d) = Σ weight / (SEARCH_RRF_K +
rank), rank 1-based in each list that has d; or by a weighted sum of min-max scaled scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import connections, transaction

from search.backends.base import Narrowing
from worker import chunk_store

# Documents of the semantic list at most (the rerank pool's largest size).
MAX_DOCUMENTS = 200


@dataclass
class SemanticHits:
    """Documents nearest the query, best first: id -> (cosine of its best chunk, its chunks' ordinals nearest first)."""

    documents: list[int] = field(default_factory=list)
    cosine: dict[int, float] = field(default_factory=dict)
    near_ordinals: dict[int, list[int]] = field(default_factory=dict)
    path: str = ""  # "pgvector", "pgvector+exact" (the filters left too few), "exact"
    refused: str = ""  # why no chunks were scanned (the exact path's bound)
    chunks_scanned: int = 0


def vector_path(using: str = "default") -> str:
    """Return which path this database runs: "pgvector" (HNSW) or "exact" (reads the table's column type)."""
    return chunk_store.vector_path(connections[using])


def _filters(collection: str, languages: list[str] | None, narrowing: Narrowing | None) -> tuple[str, list]:
    sql = ["d.collection = %s"]
    params: list[object] = [collection]
    if languages:
        sql.append("d.language = ANY(%s::text[])")
        params.append(list(languages))
    if narrowing is not None and narrowing.source is not None:
        sql.append("d.source = %s")
        params.append(narrowing.source)
    if narrowing is not None and narrowing.added_since is not None:
        sql.append("d.created_at >= %s")
        params.append(narrowing.added_since)
    return " AND ".join(sql), params


def nearest_documents(
    vector: list[float],
    *,
    model: str,
    collection: str,
    languages: list[str] | None = None,
    narrowing: Narrowing | None = None,
    chunks: int | None = None,
    documents: int = MAX_DOCUMENTS,
    using: str = "default",
) -> SemanticHits:
    """Return the documents whose chunks are nearest `vector` (SQL: one or two statements on the
    database `using`)."""
    query = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(query))
    if norm > 0:
        query = query / norm
    want = chunks or settings.SEARCH_SEMANTIC_CHUNKS
    where, params = _filters(collection, languages, narrowing)
    path = vector_path(using)
    if path == chunk_store.PGVECTOR:
        rows, used = _pgvector_rows(query, model, where, params, want, using)
        hits = SemanticHits(path=used, chunks_scanned=len(rows))
    else:
        rows, refused, scanned = _exact_rows(query, model, where, params, want, using)
        hits = SemanticHits(path=chunk_store.EXACT, refused=refused, chunks_scanned=scanned)
    for document_id, ordinal, cosine in rows:
        if document_id not in hits.cosine:
            if len(hits.documents) >= documents:
                continue
            hits.documents.append(document_id)
            hits.cosine[document_id] = round(float(cosine), 4)
        hits.near_ordinals.setdefault(document_id, []).append(ordinal)
    return hits


def _pgvector_rows(query: np.ndarray, model: str, where: str, params: list, want: int, using: str) -> tuple[list, str]:
    dims = len(query)
    literal = chunk_store.to_parameter(query, chunk_store.PGVECTOR)
    distance = f"v.vector::vector({dims}) <=> %s::vector({dims})"
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        # The index returns at most ef_search rows: as many as the chunks asked for, the filters after.
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(min(1000, max(40, want * 2)))])
        cursor.execute(
            f"""
            SELECT c.document_id, c.ordinal, 1 - n.distance FROM (
                SELECT v.chunk_id, {distance} AS distance FROM search_chunkvector v
                WHERE v.model = %s AND v.dims = %s ORDER BY {distance} LIMIT %s
            ) n JOIN documents_chunk c ON c.id = n.chunk_id JOIN documents_document d ON d.id = c.document_id
            WHERE {where} ORDER BY n.distance""",  # noqa: S608 - constants and placeholders only
            [literal, model, dims, literal, want * 2, *params],
        )
        rows = cursor.fetchall()
        if len(rows) >= want:
            return rows[:want], chunk_store.PGVECTOR
        # The filters left too few of the index's nearest: an exact scan of the filtered chunks.
        cursor.execute("SELECT set_config('enable_indexscan', 'off', true)")
        cursor.execute(
            f"""
            SELECT c.document_id, c.ordinal, 1 - ({distance}) FROM search_chunkvector v
            JOIN documents_chunk c ON c.id = v.chunk_id JOIN documents_document d ON d.id = c.document_id
            WHERE v.model = %s AND v.dims = %s AND {where} ORDER BY {distance} LIMIT %s""",  # noqa: S608
            [literal, model, dims, *params, literal, want],
        )
        return cursor.fetchall(), f"{chunk_store.PGVECTOR}+exact"


def _exact_rows(
    query: np.ndarray, model: str, where: str, params: list, want: int, using: str
) -> tuple[list, str, int]:
    bound = settings.SEARCH_SEMANTIC_EXACT_MAX
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"""
            SELECT c.document_id, c.ordinal, v.vector FROM search_chunkvector v
            JOIN documents_chunk c ON c.id = v.chunk_id JOIN documents_document d ON d.id = c.document_id
            WHERE v.model = %s AND v.dims = %s AND {where} LIMIT %s""",  # noqa: S608 - constants and placeholders
            [model, len(query), *params, bound + 1],
        )
        rows = cursor.fetchall()
    if len(rows) > bound:
        return [], f"more than SEARCH_SEMANTIC_EXACT_MAX={bound} chunk vectors to scan without pgvector", 0
    if not rows:
        return [], "", 0
    matrix = np.frombuffer(b"".join(bytes(row[2]) for row in rows), dtype=np.float32).reshape(len(rows), len(query))
    cosines = matrix @ query
    top = np.argsort(-cosines, kind="stable")[:want]
    return [(rows[i][0], rows[i][1], float(cosines[i])) for i in top], "", len(rows)


def document_cosines(
    vector: list[float], document_ids: list[int], *, model: str, using: str = "default"
) -> dict[int, float]:
    """Return the cosine of each given document's best chunk to `vector` (rounded as nearest_documents
    rounds); a document none of whose chunks has a vector of `model` is left out. SQL: one statement
    (pgvector scores in PostgreSQL; the exact path reads these documents' vectors into numpy)."""
    if not document_ids:
        return {}
    query = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(query))
    if norm > 0:
        query = query / norm
    dims = len(query)
    with connections[using].cursor() as cursor:
        if vector_path(using) == chunk_store.PGVECTOR:
            literal = chunk_store.to_parameter(query, chunk_store.PGVECTOR)
            cursor.execute(
                f"""
                SELECT c.document_id, max(1 - (v.vector::vector({dims}) <=> %s::vector({dims})))
                FROM search_chunkvector v JOIN documents_chunk c ON c.id = v.chunk_id
                WHERE v.model = %s AND v.dims = %s AND c.document_id = ANY(%s) GROUP BY c.document_id""",  # noqa: S608 - dims is an int
                [literal, model, dims, list(document_ids)],
            )
            return {document_id: round(float(cosine), 4) for document_id, cosine in cursor.fetchall()}
        cursor.execute(
            "SELECT c.document_id, v.vector FROM search_chunkvector v JOIN documents_chunk c ON c.id = v.chunk_id "
            "WHERE v.model = %s AND v.dims = %s AND c.document_id = ANY(%s)",
            [model, dims, list(document_ids)],
        )
        rows = cursor.fetchall()
    best: dict[int, float] = {}
    if rows:
        matrix = np.frombuffer(b"".join(bytes(row[1]) for row in rows), dtype=np.float32).reshape(len(rows), dims)
        for (document_id, _), cosine in zip(rows, matrix @ query, strict=True):
            best[document_id] = max(best.get(document_id, -1.0), float(cosine))
    return {document_id: round(cosine, 4) for document_id, cosine in best.items()}


def reciprocal_rank_fusion(
    lists: list[list[int]], *, k: int | None = None, weights: list[float] | None = None
) -> list[tuple[int, float]]:
    """Return the ids of `lists` by their RRF score Σ weight / (k + rank), best first (ties: the
    first list's order, then the next's); every weight 1 unless given."""
    constant = settings.SEARCH_RRF_K if k is None else k
    weights = weights or [1.0] * len(lists)
    scores: dict[int, float] = {}
    first_seen: dict[int, tuple[int, int]] = {}
    for which, (ranked, weight) in enumerate(zip(lists, weights, strict=True)):
        for rank, item in enumerate(ranked, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (constant + rank)
            first_seen.setdefault(item, (which, rank))
    return sorted(scores.items(), key=lambda pair: (-pair[1], first_seen[pair[0]]))


def status() -> dict:
    """Return what the status API says about the semantic candidates (SQL: one catalogue read)."""
    enabled = bool(settings.SEARCH_SEMANTIC)
    try:
        path = vector_path()
    except Exception as error:  # the table is missing (migrations not run) or the database is away
        return {"enabled": enabled, "path": "unavailable", "detail": type(error).__name__}
    if path == chunk_store.PGVECTOR:
        detail = "pgvector: HNSW index (cosine) over the chunk vectors in PostgreSQL"
    else:
        detail = (
            "exact scan of the chunk vectors in PostgreSQL (no pgvector on this server), "
            f"at most {settings.SEARCH_SEMANTIC_EXACT_MAX} chunks per search"
        )
    return {"enabled": enabled, "path": path, "detail": detail, "rrf_k": settings.SEARCH_RRF_K}
