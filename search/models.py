"""The BM25 index the PostgreSQL backend keeps beside the documents: statistics and postings.

Nothing in Python writes these tables. Triggers on `documents_document` (defined in this app's
migrations: search/migrations/0002_bm25_triggers.py, 0003_packed_postings.py and later) update
them in the same statement that inserts, updates or deletes documents, so they are exact inside
every transaction, whichever code path wrote: the admin, the REST API, an import, a queryset
delete. `reindex_documents` rebuilds them.
"""

from __future__ import annotations

from django.db import models


class Bm25Collection(models.Model):
    """Per-collection totals (the N and average lengths of BM25) and the parameters of the impacts."""

    name = models.CharField(max_length=100, unique=True)
    doc_count = models.BigIntegerField(default=0)
    title_tokens = models.BigIntegerField(default=0)
    body_tokens = models.BigIntegerField(default=0)
    # The BM25 parameters the postings' `impact` was computed with (see Bm25Posting.impact);
    # scoring itself always uses the settings. `reindex_documents` brings these in line.
    k1 = models.FloatField()
    b = models.FloatField()
    title_weight = models.FloatField()

    class Meta:
        db_table = "search_bm25_collection"

    def __str__(self) -> str:
        return f"{self.name} ({self.doc_count} documents)"

    @property
    def avg_title_tokens(self) -> float:
        return self.title_tokens / self.doc_count if self.doc_count else 0.0

    @property
    def avg_body_tokens(self) -> float:
        return self.body_tokens / self.doc_count if self.doc_count else 0.0


class Bm25Term(models.Model):
    """One lexeme of one collection and its document frequency (documents that contain it)."""

    id = models.BigAutoField(primary_key=True)
    collection = models.ForeignKey(Bm25Collection, on_delete=models.CASCADE, related_name="terms")
    lexeme = models.TextField()
    df = models.IntegerField()

    class Meta:
        db_table = "search_bm25_term"
        constraints = [
            # The query's lexemes are looked up here (search.backends.postgres.statements TERMS_SQL); the
            # triggers upsert on it.
            models.UniqueConstraint(fields=["collection", "lexeme"], name="bm25_term_unique_lexeme"),
        ]

    def __str__(self) -> str:
        return f"{self.lexeme} (df {self.df})"


class Bm25DocumentLength(models.Model):
    """A document's indexed length in tokens, per field (BM25's dl)."""

    document_id = models.BigIntegerField(primary_key=True)
    collection = models.ForeignKey(Bm25Collection, on_delete=models.CASCADE, related_name="lengths")
    title_tokens = models.IntegerField()
    body_tokens = models.IntegerField()

    class Meta:
        db_table = "search_bm25_document"

    def __str__(self) -> str:
        return f"document {self.document_id}: {self.title_tokens} + {self.body_tokens} tokens"


class Bm25Posting(models.Model):
    """That a term occurs in a document, how often per field, and the document's lengths.

    The lengths are repeated from Bm25DocumentLength so that scoring reads postings alone
    (an index-only scan). `impact` is the term's BM25 weight in the document without the idf,
    computed with the collection's k1/b/title_weight and average lengths at the time it was
    written; it only orders a term's postings (which documents of a very common term are scored
    first). Scores are always computed afresh from the counts and the current statistics.
    """

    pk = models.CompositePrimaryKey("document_id", "term_id")
    document_id = models.BigIntegerField()
    term_id = models.BigIntegerField()
    tf_title = models.SmallIntegerField()
    tf_body = models.SmallIntegerField()
    title_tokens = models.IntegerField()
    body_tokens = models.IntegerField()
    impact = models.FloatField()

    class Meta:
        db_table = "search_bm25_posting"
        # The primary key (document_id, term_id) serves the triggers' deletes and the scoring of a
        # pooled document's other terms (search.backends.postgres.statements POOL_FILL).
        indexes = [
            # search.backends.postgres.statements: all of a rare term's postings (SCORE_EXHAUSTIVE)
            # and a common term's best ones (POOL_READ ... ORDER BY impact DESC LIMIT), index-only.
            models.Index(
                fields=["term_id", "-impact"],
                include=["document_id", "tf_title", "tf_body", "title_tokens", "body_tokens"],
                name="bm25_posting_term_impact",
            ),
        ]

    def __str__(self) -> str:
        return f"term {self.term_id} in document {self.document_id}"


class Bm25Pack(models.Model):
    """A very common term's postings packed into arrays, so a search reads them as a few values.

    Scoring a query of several common terms exactly means reading every one of their postings: at a
    million documents, two common terms hold some 350,000, and row by row that costs PostgreSQL
    about 0.2 s (docs/benchmarks.md, section 4). Packed, they are five byte strings per term
    (big-endian: int8 document ids in ascending order, int2 counts, int4 lengths), scored in numpy
    (search.backends.packed). A pack is a snapshot, taken by `manage.py pack_postings`, by
    `reindex_documents`, and in the background after SEARCH_PACK_REFRESH writes; every document
    written after it is listed in Bm25Change, and a search reads those documents' postings live
    instead, so results stay exact between snapshots.
    """

    # The term's id (search_bm25_term.id); not a foreign key, so that rebuilding a collection's
    # terms (search_bm25_rebuild) is not held up by packs, which the rebuild drops first.
    term_id = models.BigIntegerField(primary_key=True)
    collection = models.ForeignKey(Bm25Collection, on_delete=models.CASCADE, related_name="packs")
    df = models.IntegerField()  # the documents packed (the term's df when the pack was taken)
    documents = models.BinaryField()
    tf_title = models.BinaryField()
    tf_body = models.BinaryField()
    title_tokens = models.BinaryField()
    body_tokens = models.BinaryField()

    class Meta:
        db_table = "search_bm25_pack"

    def __str__(self) -> str:
        return f"pack of term {self.term_id} ({self.df} postings)"


class Bm25Change(models.Model):
    """A document written (inserted, updated or deleted) since its collection's packs were taken.

    Appended by triggers (search/migrations/0003_packed_postings.py) in the writing statement, only
    for collections that have packs; emptied when the packs are taken again.
    """

    id = models.BigAutoField(primary_key=True)
    collection = models.ForeignKey(Bm25Collection, on_delete=models.CASCADE, related_name="changes")
    document_id = models.BigIntegerField()

    class Meta:
        db_table = "search_bm25_change"
        indexes = [models.Index(fields=["collection", "document_id"], name="bm25_change_collection_doc")]

    def __str__(self) -> str:
        return f"document {self.document_id} changed"


class ChunkVector(models.Model):
    """One chunk's vector from one embedding model (search.semantic reads them, the worker writes them).

    Written and read in plain SQL only (worker.chunk_store), so the worker needs no Django model:
    this class tells Django the table exists (flush, the test database) and what it holds. The
    migration (0005_chunk_vectors) makes `chunk_id` a real foreign key with ON DELETE CASCADE, so a
    deleted or re-chunked document (every edit, re-index and import replaces its chunks, with new
    ids) takes its vectors with it in the same statement: no stale and no orphan vector. `vector`
    is pgvector's `vector` where the server has the extension (with an HNSW index per dimension),
    else `bytea` (float32, little-endian) scanned exactly; the model (`model`: its vectors id) is
    part of the key, so another model never reads them.
    """

    pk = models.CompositePrimaryKey("chunk", "model")
    chunk = models.ForeignKey(
        "documents.Chunk", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", db_index=False
    )
    model = models.CharField(max_length=200)
    key = models.CharField(max_length=64)  # sha256 of the exact text embedded (worker.protocol.text_key)
    dims = models.SmallIntegerField()
    vector = models.BinaryField()

    class Meta:
        db_table = "search_chunkvector"
        managed = True

    def __str__(self) -> str:
        return f"chunk {self.chunk_id} ({self.model})"
