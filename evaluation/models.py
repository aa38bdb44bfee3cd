"""Relevance judgments made on the site, and stored evaluation runs (of judgments and data sets)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from documents.models import Document


class Ordering(models.TextChoices):
    FULLTEXT = "fulltext", "Full-text order"
    RERANKED = "reranked", "Reranked order"
    # Through the API without saying where the result was seen.
    UNKNOWN = "", "Not said"


# Grades as TREC uses them: 0 not relevant, 1 relevant, 2 highly relevant, 3 perfect. The page's
# "relevant" is 1 (BEIR's binary qrels use 1 too); staff may grade finer through the API.
GRADE_NOT_RELEVANT = 0
GRADE_RELEVANT = 1
GRADE_MAX = 3
# The deepest position a judged result can have been shown at: far below the column's int4 range,
# and deeper than anyone pages (the API and the judging form both cap it here).
RANK_MAX = 10_000


class Judgment(models.Model):
    """One judge's grade of one document for one query (a repeated judgment updates it)."""

    # As searched (search.services.clean_query: control characters out, whitespace collapsed),
    # NFC-normalised; case is kept, since `OR` is an operator and `or` a word.
    query = models.CharField(max_length=500)
    language = models.CharField(max_length=8, help_text="the query's language (documents.textsearch.detect_language)")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="judgments")
    # The document's content hash when it was judged: a later edit makes the judgment stale.
    document_hash = models.CharField(max_length=64)
    grade = models.PositiveSmallIntegerField()
    ordering = models.CharField(max_length=8, choices=Ordering.choices, blank=True, default=Ordering.UNKNOWN)
    rank = models.PositiveIntegerField(null=True, blank=True, help_text="1-based position it was shown at")
    # Who judged: a signed-in user, or an anonymous client by a salted hash of its address.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="judgments"
    )
    client_hash = models.CharField(max_length=64, blank=True, default="")
    # Whether the judge was staff when judging: `evaluate --judgments` uses these by default.
    by_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["query", "document_id", "-updated_at"]
        indexes = [
            # evaluation.judgments.judgment_selection and the admin's grouping: by query, staff or all.
            models.Index(fields=["by_staff", "query"], name="judgment_staff_query"),
        ]
        constraints = [
            # One judge, one grade per query and document: a second click updates the first.
            models.UniqueConstraint(
                fields=["user", "query", "document"], condition=Q(user__isnull=False), name="judgment_unique_user"
            ),
            models.UniqueConstraint(
                fields=["client_hash", "query", "document"],
                condition=Q(user__isnull=True),
                name="judgment_unique_client",
            ),
            models.CheckConstraint(condition=Q(user__isnull=False) | ~Q(client_hash=""), name="judgment_has_a_judge"),
            models.CheckConstraint(condition=Q(grade__lte=GRADE_MAX), name="judgment_grade_range"),
        ]

    def __str__(self) -> str:
        return f"{self.query!r} / {self.document_id}: {self.grade}"

    @property
    def judge(self) -> str:
        """Return who judged, as staff read it: the user's name, or the client hash's start."""
        return self.user.get_username() if self.user_id else f"client {self.client_hash[:10]}"

    @property
    def is_stale(self) -> bool:
        """Return whether the document changed since it was judged (reads the document)."""
        return self.document.content_hash != self.document_hash


class RunSource(models.TextChoices):
    JUDGMENTS = "judgments", "Site judgments"
    DATASET = "dataset", "Data set"


class EvaluationRun(models.Model):
    """One finished `evaluate`: its figures, per language and per query, and its chart."""

    name = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=RunSource.choices)
    model = models.CharField(max_length=300, blank=True)
    queries = models.PositiveIntegerField(default=0)
    # {"fulltext": {metric: mean}, "reranked": {...}}, over all queries.
    metrics = models.JSONField(default=dict)
    # {language: {"queries": n, "fulltext": {...}, "reranked": {...}}}
    languages = models.JSONField(default=dict)
    # [{"query_id", "query", "language", "rerank_status", "fulltext": {...}, "reranked": {...}}]
    per_query = models.JSONField(default=list)
    # The whole results.json, less its per-query rankings (those can be large).
    report = models.JSONField(default=dict)
    chart_png = models.BinaryField(blank=True, default=b"")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.created_at:%Y-%m-%d %H:%M})" if self.created_at else self.name

    @property
    def has_chart(self) -> bool:
        """Return whether a chart was stored (reads the chart when it was deferred)."""
        return bool(self.chart_png)


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Waiting to start"
    RUNNING = "running", "Running"
    DONE = "done", "Finished"
    FAILED = "failed", "Failed"


class EvaluationJob(models.Model):
    """A run of `evaluate --judgments` started from the evaluation page (evaluation.jobs).

    It runs in a process of its own, never in the request; that process writes its progress here
    after each query, and `updated_at` is its heartbeat.
    """

    status = models.CharField(max_length=8, choices=JobStatus.choices, default=JobStatus.QUEUED)
    # True while queued or running; at most one such job (the constraint below).
    active = models.BooleanField(default=True)
    include_public = models.BooleanField(default=False, help_text="visitors' judgments too, not only staff's")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pid = models.PositiveIntegerField(null=True, blank=True, help_text="the process running it")
    host = models.CharField(max_length=255, blank=True, default="")
    done = models.PositiveIntegerField(default=0, help_text="queries evaluated so far")
    total = models.PositiveIntegerField(default=0, help_text="queries to evaluate (0 until counted)")
    message = models.TextField(blank=True, default="", help_text="why it failed, or what it is doing")
    run = models.ForeignKey(EvaluationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=Q(active=True), name="evaluation_job_one_active"),
        ]

    def __str__(self) -> str:
        return f"evaluation job {self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0
