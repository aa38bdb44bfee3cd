"""Chunk vectors in PostgreSQL, beside the chunks (issue 22): search_chunkvector.

One row per (chunk, embedding model). `chunk_id` is a foreign key with ON DELETE CASCADE: every
edit, re-index and import replaces a document's chunks (new ids), and a delete removes them, so
the same statement removes their vectors: none is ever stale or orphaned.

Where the server has pgvector (the embedded pgserver's PostgreSQL 16 ships 0.6.2), the extension
is created here and `vector` is pgvector's type, with an HNSW index (cosine) for the 384
dimensions of multilingual-e5-small; elsewhere (a PostgreSQL without it, such as the machine's
15) `vector` is bytea (float32) and search.semantic scans it exactly, within a stated bound.
The probe runs in a savepoint: a server without the extension only loses the savepoint.
"""

import django.db.models.deletion
from django.db import migrations, models, transaction
from django.db.utils import DatabaseError

# The dimensions an HNSW index is built for (multilingual-e5-small, the packaged default).
HNSW_DIMENSIONS = (384,)


def has_pgvector(schema_editor) -> bool:
    """Create the extension if the server has it; return whether it is there (a savepoint guards)."""
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except DatabaseError:
        return False
    return True


def create_table(apps, schema_editor) -> None:
    pgvector = has_pgvector(schema_editor)
    column = "vector" if pgvector else "bytea"
    schema_editor.execute(
        f"""
        CREATE TABLE search_chunkvector (
            chunk_id bigint NOT NULL REFERENCES documents_chunk (id) ON DELETE CASCADE,
            model varchar(200) NOT NULL,
            key varchar(64) NOT NULL,
            dims smallint NOT NULL,
            vector {column} NOT NULL,
            PRIMARY KEY (chunk_id, model)
        )"""
    )
    # A model's vectors (the exact scan, the counts, the worker's backlog).
    schema_editor.execute("CREATE INDEX search_chunkvector_model ON search_chunkvector (model, chunk_id)")
    if pgvector:
        for dims in HNSW_DIMENSIONS:
            schema_editor.execute(
                f"CREATE INDEX search_chunkvector_hnsw_{dims} ON search_chunkvector "
                f"USING hnsw ((vector::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
            )


def drop_table(apps, schema_editor) -> None:
    schema_editor.execute("DROP TABLE IF EXISTS search_chunkvector")


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0004_markdown_source"),
        ("search", "0004_current_functions_and_triggers"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(create_table, drop_table)],
            state_operations=[
                migrations.CreateModel(
                    name="ChunkVector",
                    fields=[
                        (
                            "pk",
                            models.CompositePrimaryKey(
                                "chunk", "model", blank=True, editable=False, primary_key=True, serialize=False
                            ),
                        ),
                        ("model", models.CharField(max_length=200)),
                        ("key", models.CharField(max_length=64)),
                        ("dims", models.SmallIntegerField()),
                        ("vector", models.BinaryField()),
                        (
                            "chunk",
                            models.ForeignKey(
                                db_constraint=False,
                                db_index=False,
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                related_name="+",
                                to="documents.chunk",
                            ),
                        ),
                    ],
                    options={"db_table": "search_chunkvector", "managed": True},
                ),
            ],
        ),
    ]
