"""The document library: documents, their reranker-sized chunks and the full-text vector."""

import hashlib
import unicodedata

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from django.urls import reverse

from documents.textsearch import TS_CONFIG

# The site's own library; evaluation sets import into collections of their own.
LIBRARY = "library"


class Language(models.TextChoices):
    ENGLISH = "en", "English"
    CHINESE = "zh", "Chinese"
    MIXED = "mixed", "Mixed Chinese/English"


def content_hash(title: str, body: str) -> str:
    """Return the hash that identifies exact duplicates (NFC-normalised, whitespace-collapsed)."""
    normal = unicodedata.normalize("NFC", f"{title}\n{body}")
    normal = " ".join(normal.split())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


class Document(models.Model):
    collection = models.CharField(max_length=100, default=LIBRARY, db_index=True)
    external_id = models.CharField(max_length=200, blank=True, help_text="Id in the source, e.g. a corpus _id")
    title = models.CharField(max_length=500)
    body = models.TextField()
    # The Markdown a .md file was written in: shown rendered on the document page. `body` is its
    # text (documents.markdown), which is what is indexed, chunked and reranked.
    markdown = models.TextField(blank=True, default="", editable=False)
    language = models.CharField(max_length=8, choices=Language.choices, db_index=True)
    source = models.CharField(max_length=1000, blank=True, help_text="File name or URL it came from")
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, editable=False)
    # Filled by documents.services with Chinese segmented, so PostgreSQL can index it.
    title_search = models.TextField(editable=False, default="")
    body_search = models.TextField(editable=False, default="")
    # A stored generated column: PostgreSQL recomputes it in the same statement that writes the
    # row, so the vector can never lag the text. Title weighs A, body B.
    search_vector = models.GeneratedField(
        expression=SearchVector("title_search", weight="A", config=TS_CONFIG)
        + SearchVector("body_search", weight="B", config=TS_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # search.backends.postgres.statements HAS_PHRASE: `search_vector @@ phraseto_tsquery(...)`, the phrase
            # filters of a query (the BM25 postings, search.models, serve the ranking itself).
            GinIndex(fields=["search_vector"], name="document_search_vector_gin"),
            # evaluate / import_documents: look up a corpus document by its own id.
            models.Index(fields=["collection", "external_id"], name="document_external_id"),
        ]
        constraints = [
            # Exact duplicates are skipped on import; the constraint makes that race-free.
            models.UniqueConstraint(fields=["collection", "content_hash"], name="document_unique_content"),
            # One document per id of its source within a collection, however many imports run at
            # once (documents.services.documents_import also queues them per collection).
            models.UniqueConstraint(
                fields=["collection", "external_id"], condition=~Q(external_id=""), name="document_unique_external_id"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("search:document", args=[self.pk])


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    start = models.PositiveIntegerField(help_text="Offset of the chunk's first character in the body")
    end = models.PositiveIntegerField(help_text="Offset just past the chunk's last character")

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_ordinal")]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"
