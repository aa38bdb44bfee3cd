"""Chunk vectors in PostgreSQL, in plain SQL: what the worker writes and reads, with no Django model.

The table, search_chunkvector, is made by search/migrations/0005_chunk_vectors.py: one row per
(chunk, model), `chunk_id` a foreign key to documents_chunk with ON DELETE CASCADE, so a chunk
that goes (an edit, a re-index and an import replace a document's chunks; a delete removes them)
takes its vectors with it in the same statement. `model` is the vectors id of the embedding model
(worker.protocol.ModelInfo.vectors), `key` the sha256 of the exact text embedded.

`vector` is pgvector's `vector` on a server with the extension (the "pgvector" path: HNSW index),
else bytea holding float32 (the "exact" path). Every function takes a DB-API connection: the
worker's own (Django's, per thread) or a test's.
"""

from __future__ import annotations

import numpy as np

from worker.protocol import passage_text, text_key

TABLE = "search_chunkvector"
PGVECTOR, EXACT = "pgvector", "exact"
# Chunks a statement writes or reads at most.
ROWS_PER_STATEMENT = 500

_paths: dict[str, str] = {}


def vector_path(connection) -> str:
    """Return "pgvector" when the table's `vector` column is pgvector's type, else "exact" (cached)."""
    name = _connection_key(connection)
    if name not in _paths:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attname = 'vector'",
                [TABLE],
            )
            row = cursor.fetchone()
        _paths[name] = PGVECTOR if row and row[0].startswith("vector") else EXACT
    return _paths[name]


def _connection_key(connection) -> str:
    settings = getattr(connection, "settings_dict", None)
    if settings is not None:
        return f"{settings.get('HOST')}:{settings.get('PORT')}/{settings.get('NAME')}"
    info = getattr(connection, "info", None)
    return f"{getattr(info, 'host', '')}:{getattr(info, 'port', '')}/{getattr(info, 'dbname', '')}"


def to_parameter(vector: np.ndarray, path: str) -> object:
    """Return a vector as the SQL parameter its column takes: '[…]' text for pgvector, float32 bytes else."""
    values = np.ascontiguousarray(vector, dtype=np.float32)
    if path == PGVECTOR:
        return "[" + ",".join(f"{v:.7g}" for v in values.tolist()) + "]"
    return values.tobytes()


def select_vector(path: str, column: str = "vector") -> str:
    """Return the SQL that reads the column as something from_column turns into an array."""
    return f"{column}::real[]" if path == PGVECTOR else column


def from_column(value: object) -> np.ndarray:
    if isinstance(value, list | tuple):
        return np.asarray(value, dtype=np.float32)
    return np.frombuffer(bytes(value), dtype=np.float32)


def store(connection, model: str, rows: list[tuple[int, str, np.ndarray]]) -> int:
    """Write (chunk_id, key, vector) rows of `model`; return how many were written.

    A chunk deleted meanwhile is skipped (the insert reads documents_chunk under the foreign key);
    a vector already there is replaced.
    """
    if not rows:
        return 0
    path = vector_path(connection)
    cast = "::vector" if path == PGVECTOR else "::bytea"
    written = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            part = rows[start : start + ROWS_PER_STATEMENT]
            values = ",".join(["(%s::bigint, %s, %s::smallint, %s" + cast + ")"] * len(part))
            parameters: list[object] = []
            for chunk_id, key, vector in part:
                parameters += [int(chunk_id), key, len(vector), to_parameter(vector, path)]
            cursor.execute(
                f"INSERT INTO {TABLE} (chunk_id, model, key, dims, vector) "  # noqa: S608 - constants only
                f"SELECT v.chunk_id, %s, v.key, v.dims, v.vector "
                f"FROM (VALUES {values}) AS v (chunk_id, key, dims, vector) "
                "WHERE EXISTS (SELECT 1 FROM documents_chunk c WHERE c.id = v.chunk_id) "
                "ON CONFLICT (chunk_id, model) DO UPDATE SET key = EXCLUDED.key, dims = EXCLUDED.dims, "
                "vector = EXCLUDED.vector",
                [model, *parameters],
            )
            written += max(cursor.rowcount, 0)
    return written


def lookup(connection, model: str, chunk_ids: list[int]) -> dict[int, tuple[str, np.ndarray]]:
    """Return {chunk_id: (key, vector)} for the chunks that have a vector of `model`."""
    found: dict[int, tuple[str, np.ndarray]] = {}
    unique = sorted({int(i) for i in chunk_ids})
    if not unique:
        return found
    path = vector_path(connection)
    with connection.cursor() as cursor:
        for start in range(0, len(unique), ROWS_PER_STATEMENT):
            cursor.execute(
                f"SELECT chunk_id, key, {select_vector(path)} FROM {TABLE} "  # noqa: S608 - constants only
                "WHERE model = %s AND chunk_id = ANY(%s)",
                [model, unique[start : start + ROWS_PER_STATEMENT]],
            )
            for chunk_id, key, value in cursor.fetchall():
                found[chunk_id] = (key, from_column(value))
    return found


def missing(connection, model: str, limit: int) -> list[tuple[int, str, str]]:
    """Return up to `limit` chunks without a vector of `model`, newest first: (chunk_id, key, text).

    The text is what the reranker reads for a chunk (worker.protocol.passage_text: title and chunk).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.id, d.title, c.text FROM documents_chunk c "  # noqa: S608 - constants only
            "JOIN documents_document d ON d.id = c.document_id "
            f"WHERE NOT EXISTS (SELECT 1 FROM {TABLE} v WHERE v.chunk_id = c.id AND v.model = %s) "
            "ORDER BY c.id DESC LIMIT %s",
            [model, limit],
        )
        rows = cursor.fetchall()
    result = []
    for chunk_id, title, text in rows:
        passage = passage_text(title, text)
        result.append((chunk_id, text_key(passage), passage))
    return result


def counts(connection, model: str) -> dict[str, int]:
    """Return how many chunks have a vector of `model` and how many have none yet."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE model = %s", [model])  # noqa: S608
        stored = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM documents_chunk")
        chunks = cursor.fetchone()[0]
    return {"stored": int(stored), "pending": max(0, int(chunks) - int(stored))}
