"""The pgvector path of the semantic candidates, on a PostgreSQL 16 of this module's own.

The session's database may be a PostgreSQL without pgvector (the machine's 15 runs the exact
path: tests/search/test_semantic.py); here an embedded PostgreSQL 16 (pgserver, pgvector 0.6.2)
is started on a unix socket in this module's own folder, migrated from scratch, and stopped at
the end. The vectors are synthetic (no model needed): what is checked is the migration's guarded
pgvector column and HNSW index, the nearest-chunk search through them against numpy's exact
order, the index being used, and the cascade of a chunk's delete to its vectors.
"""

from __future__ import annotations

import copy
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connections

from documents.models import Chunk, Document, content_hash
from search import semantic
from tests.support.own_services import OwnPostgres
from worker import chunk_store

ALIAS = "own_pgvector"
MODEL = "synthetic-384"
DIMENSIONS = 384
DOCUMENTS = 60


@pytest.fixture(scope="module")
def pgvector_database(tmp_path_factory, django_db_blocker):
    """Yield the alias of a migrated database on a PostgreSQL 16 of this module's own."""
    folder = tmp_path_factory.mktemp("pgv")
    server = OwnPostgres(folder)
    with django_db_blocker.unblock():
        try:
            server.start()
            url = urlsplit(server.create_database("pgvector_test"))
            settings = copy.deepcopy(connections.settings["default"])
            settings.update(NAME="pgvector_test", HOST="", PORT="", USER=url.username or "postgres", PASSWORD="")
            settings["OPTIONS"] = {**settings.get("OPTIONS", {}), "host": parse_qs(url.query)["host"][0]}
            settings["CONN_MAX_AGE"] = 0
            connections.settings[ALIAS] = settings
            call_command("migrate", database=ALIAS, verbosity=0)
            yield ALIAS
        finally:
            if ALIAS in connections.settings:
                connections[ALIAS].close()
                del connections.settings[ALIAS]
            server.close()


@pytest.fixture(scope="module")
def library(pgvector_database, django_db_blocker):
    """DOCUMENTS documents of one chunk each with random unit vectors; returns (chunk ids, vectors, docs)."""
    rng = np.random.default_rng(22)
    vectors = rng.standard_normal((DOCUMENTS, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with django_db_blocker.unblock():
        documents, chunks = [], []
        for i in range(DOCUMENTS):
            title, body = f"Document {i}", f"Body of document {i}."
            document = Document.objects.using(pgvector_database).create(
                title=title, body=body, language="en", content_hash=content_hash(title, body), collection="pgv"
            )
            chunk = Chunk.objects.using(pgvector_database).create(
                document=document, ordinal=0, text=body, start=0, end=len(body)
            )
            documents.append(document.pk)
            chunks.append(chunk.pk)
        rows = [(chunk_id, f"key-{chunk_id}", vectors[i]) for i, chunk_id in enumerate(chunks)]
        assert chunk_store.store(connections[pgvector_database], MODEL, rows) == DOCUMENTS
        yield {"documents": documents, "chunks": chunks, "vectors": vectors}


def test_the_migration_made_a_pgvector_column_with_an_hnsw_index(pgvector_database, django_db_blocker):
    with django_db_blocker.unblock(), connections[pgvector_database].cursor() as cursor:
        assert semantic.vector_path(pgvector_database) == "pgvector"
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'search_chunkvector_hnsw_384'")
        (definition,) = cursor.fetchone()
        assert "USING hnsw" in definition and "vector_cosine_ops" in definition


def test_the_nearest_documents_through_the_index_are_numpys_exact_ones(library, pgvector_database, django_db_blocker):
    rng = np.random.default_rng(7)
    query = library["vectors"][5] + 0.1 * rng.standard_normal(DIMENSIONS).astype(np.float32)
    exact = np.argsort(-(library["vectors"] @ (query / np.linalg.norm(query))))[:10]
    with django_db_blocker.unblock():
        hits = semantic.nearest_documents(
            query.tolist(), model=MODEL, collection="pgv", chunks=10, documents=10, using=pgvector_database
        )
    assert hits.path == "pgvector"
    assert hits.documents[0] == library["documents"][5]
    # 60 vectors: HNSW finds the exact ten here (a recall of 1 on so small a graph).
    assert hits.documents == [library["documents"][i] for i in exact]


def test_the_cosines_of_given_documents_are_numpys(library, pgvector_database, django_db_blocker):
    """search.semantic.document_cosines (the linear fusion reads it for BM25's candidates) scores
    given documents in PostgreSQL on this path; a document without a vector is left out."""
    rng = np.random.default_rng(11)
    query = rng.standard_normal(DIMENSIONS).astype(np.float32)
    unit = query / np.linalg.norm(query)
    asked = [library["documents"][i] for i in (3, 17, 42)]
    with django_db_blocker.unblock():
        bare = Document.objects.using(pgvector_database).create(
            title="No vector", body="No chunk.", language="en", content_hash=content_hash("x", "y"), collection="pgv"
        )
        try:
            cosines = semantic.document_cosines(query.tolist(), [*asked, bare.pk], model=MODEL, using=pgvector_database)
        finally:
            bare.delete()
    expected = {library["documents"][i]: round(float(library["vectors"][i] @ unit), 4) for i in (3, 17, 42)}
    assert cosines == pytest.approx(expected, abs=1e-4)
    assert bare.pk not in cosines


def test_the_query_plan_uses_the_hnsw_index(library, pgvector_database, django_db_blocker):
    literal = chunk_store.to_parameter(library["vectors"][0], chunk_store.PGVECTOR)
    with django_db_blocker.unblock(), connections[pgvector_database].cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # 60 rows: the planner would rather scan them
        cursor.execute(
            "EXPLAIN SELECT chunk_id FROM search_chunkvector v WHERE v.model = %s AND v.dims = 384 "
            "ORDER BY v.vector::vector(384) <=> %s::vector(384) LIMIT 10",
            [MODEL, literal],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "search_chunkvector_hnsw_384" in plan, plan


def test_a_deleted_chunk_takes_its_vector_with_it(library, pgvector_database, django_db_blocker):
    with django_db_blocker.unblock():
        chunk_id = library["chunks"][-1]
        Document.objects.using(pgvector_database).filter(pk=library["documents"][-1]).delete()
        assert chunk_store.lookup(connections[pgvector_database], MODEL, [chunk_id]) == {}
        assert len(chunk_store.lookup(connections[pgvector_database], MODEL, library["chunks"])) == DOCUMENTS - 1
