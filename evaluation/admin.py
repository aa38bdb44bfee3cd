"""Admin pages for judgments (with agreement between judges, conflicts flagged) and stored runs."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, F, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from evaluation.judgments import query_agreements
from evaluation.models import GRADE_RELEVANT, EvaluationRun, Judgment

# What the agreement of a query needs of each judgment (the by-query page reads no more).
AGREEMENT_FIELDS = ("query", "language", "document_id", "grade", "user_id", "client_hash", "by_staff")


def _same_pair() -> QuerySet[Judgment]:
    return Judgment.objects.filter(query=OuterRef("query"), document_id=OuterRef("document_id"))


class ConflictFilter(admin.SimpleListFilter):
    title = "judges"
    parameter_name = "conflict"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "disagree (conflicts)"), ("no", "agree or judged once")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Judgment]) -> QuerySet[Judgment]:
        if self.value() == "yes":
            return queryset.filter(has_relevant=True, has_not_relevant=True)
        if self.value() == "no":
            return queryset.exclude(has_relevant=True, has_not_relevant=True)
        return queryset


class StaleFilter(admin.SimpleListFilter):
    title = "document since judging"
    parameter_name = "stale"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "changed (stale)"), ("no", "unchanged")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Judgment]) -> QuerySet[Judgment]:
        if self.value() == "yes":
            return queryset.exclude(document_hash=F("document__content_hash"))
        if self.value() == "no":
            return queryset.filter(document_hash=F("document__content_hash"))
        return queryset


class JudgeKindFilter(admin.SimpleListFilter):
    # Django titles a filter "By <title>": a field's own name ("by staff") read "By by staff".
    title = "judge kind"
    parameter_name = "judge"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(JUDGE_KINDS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Judgment]) -> QuerySet[Judgment]:
        if self.value() == "staff":
            return queryset.filter(by_staff=True)
        if self.value() == "user":
            return queryset.filter(by_staff=False, user__isnull=False)
        if self.value() == "anonymous":
            return queryset.filter(user__isnull=True)
        return queryset


# Who judged, as the list and its filter name them (staff: staff when judging; the evaluation's default).
JUDGE_KINDS = {"staff": "staff", "user": "signed-in visitor", "anonymous": "anonymous visitor"}
GRADE_NAMES = {0: "not relevant", 1: "relevant", 2: "highly relevant", 3: "perfect"}


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = (
        "query",
        "language",
        "document",
        "grade_shown",
        "ordering",
        "rank",
        "judge_name",
        "judge_kind",
        "flags",
        "judged_at",
    )
    list_filter = (JudgeKindFilter, ConflictFilter, StaleFilter, "language", "grade", "ordering")
    search_fields = ("query",)
    list_select_related = ("document", "user")
    ordering = ("query", "document_id", "-updated_at")
    readonly_fields = [f.name for f in Judgment._meta.fields]
    change_list_template = "admin/evaluation/judgment/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # judgments come from the result page and the API

    def has_change_permission(self, request: HttpRequest, obj: Judgment | None = None) -> bool:
        return False  # a judge's grade is theirs; staff may delete it

    def get_queryset(self, request: HttpRequest) -> QuerySet[Judgment]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                has_relevant=Exists(_same_pair().filter(grade__gte=GRADE_RELEVANT)),
                has_not_relevant=Exists(_same_pair().filter(grade__lt=GRADE_RELEVANT)),
            )
        )

    @admin.display(description="grade", ordering="grade")
    def grade_shown(self, judgment: Judgment) -> str:
        return f"{judgment.grade} · {GRADE_NAMES.get(judgment.grade, '?')}"

    @admin.display(description="judge")
    def judge_name(self, judgment: Judgment) -> str:
        return judgment.judge

    @admin.display(description="judge kind", ordering="by_staff")
    def judge_kind(self, judgment: Judgment) -> str:
        if judgment.by_staff:
            return JUDGE_KINDS["staff"]
        return JUDGE_KINDS["user"] if judgment.user_id else JUDGE_KINDS["anonymous"]

    @admin.display(description="judged", ordering="updated_at")
    def judged_at(self, judgment: Judgment) -> datetime:
        return judgment.updated_at

    @admin.display(description="flags")
    def flags(self, judgment: Judgment) -> str:
        marks = []
        if judgment.has_relevant and judgment.has_not_relevant:
            marks.append("conflict")
        if judgment.document_hash != judgment.document.content_hash:
            marks.append("stale")
        return ", ".join(marks) or "–"

    def get_urls(self) -> list[URLPattern]:
        by_query = path(
            "by-query/", self.admin_site.admin_view(self.by_query_view), name="evaluation_judgment_by_query"
        )  # admin_view: staff only (else the login page), never cached
        return [by_query, *super().get_urls()]

    def by_query_view(self, request: HttpRequest) -> HttpResponse:
        """Return judgments grouped by query: judges, agreement, and the documents they disagree on."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        staff_only = request.GET.get("staff") == "1"
        conflicts_only = request.GET.get("conflicts") == "1"
        selected = Judgment.objects.only(
            "query", "language", "document_id", "grade", "user_id", "client_hash", "by_staff"
        )
        if staff_only:
            selected = selected.filter(by_staff=True)
        rows = query_agreements(judgments=selected.iterator())
        if conflicts_only:
            rows = [row for row in rows if row.conflicts]
        changelist = reverse("admin:evaluation_judgment_changelist")
        for row in rows:
            row.conflict_links = [
                (doc, f"{changelist}?q={quote(row.query)}&document__id__exact={doc}") for doc in row.conflicts
            ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Judgments by query",
            "rows": rows,
            "staff_only": staff_only,
            "conflicts_only": conflicts_only,
            "conflict_total": sum(len(row.conflicts) for row in rows),
        }
        return TemplateResponse(request, "admin/evaluation/judgment/by_query.html", context)


@admin.register(EvaluationRun)
class EvaluationRunAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "model", "queries", "created_at", "page")
    list_filter = ("source",)
    exclude = ("chart_png",)
    readonly_fields = (
        "name",
        "source",
        "model",
        "queries",
        "metrics",
        "languages",
        "report",
        "per_query",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs are stored by `manage.py evaluate`

    def has_change_permission(self, request: HttpRequest, obj: EvaluationRun | None = None) -> bool:
        return False

    @admin.display(description="page")
    def page(self, run: EvaluationRun) -> str:
        return format_html('<a href="{}">tables and chart</a>', reverse("evaluation:run", args=[run.pk]))
