"""Pages of the evaluation app: judging a result (a plain form, then back), and the staff's runs."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from evaluation import jobs, judgments, pages
from evaluation.models import GRADE_NOT_RELEVANT, GRADE_RELEVANT, EvaluationJob, EvaluationRun
from search.api import WHOLE_NUMBER
from search.views import back_to_results, throttled_page

# What the form's "relevant" button sends, and the grade each stands for.
RELEVANT_VALUES = {"1": GRADE_RELEVANT, "0": GRADE_NOT_RELEVANT}


@require_POST
def judge(request: HttpRequest) -> HttpResponse:
    """Record a visitor's "relevant" / "not relevant", then send them back to the results (PRG)."""
    form = request.POST
    query = form.get("query", "")
    if refused := throttled_page(request, judgments.JudgmentThrottle(), query):
        return refused
    document_id, grade = form.get("document_id", ""), RELEVANT_VALUES.get(form.get("relevant", ""))
    rank = form.get("rank", "")
    if not WHOLE_NUMBER.fullmatch(document_id) or grade is None or (rank and not WHOLE_NUMBER.fullmatch(rank)):
        return pages.refused(request, query, "Choose relevant or not relevant for a result of a search.", 400)
    try:
        judgments.judgment_record(
            request=request,
            query=query,
            document_id=int(document_id),
            grade=grade,
            ordering=form.get("ordering", ""),
            rank=int(rank) if rank and int(rank) > 0 else None,
        )
    except judgments.JudgmentRefused as error:
        return pages.refused(request, query, str(error), error.status)
    back = back_to_results(form.get("back"), query) or "/"
    ordering = "fulltext" if form.get("ordering") == "fulltext" else "reranked"
    if ordering == "fulltext":
        # On a phone the page opens on the reranked tab; come back to the tab that was judged.
        back += ("&" if "?" in back else "?") + "view=fulltext"
    return HttpResponseRedirect(f"{back}#{ordering}-{int(document_id)}")


@staff_member_required
@require_GET
def runs_page(request: HttpRequest) -> HttpResponse:
    """Render the stored evaluation runs, newest first, with the latest one's figures."""
    runs = list(EvaluationRun.objects.defer("per_query", "chart_png", "report")[: pages.RUNS_LISTED])
    recent = jobs.jobs_recent()
    context = {
        "runs": runs,
        "rows": pages.run_rows(runs),
        "jobs": recent,
        "active_job": next((job for job in recent if job.active), None),
        "judged": judged_counts(),
    }
    return render(request, "evaluation/runs.html", context)


def judged_counts() -> dict[str, int]:
    """Return how many judgments and judged queries a run would read: staff's, and everyone's (SQL: one query)."""
    selection = judgments.judgment_selection(include_public=True)
    everyone = selection.aggregate(judgments=Count("id"), queries=Count("query", distinct=True))
    staff = selection.filter(by_staff=True).aggregate(judgments=Count("id"), queries=Count("query", distinct=True))
    return {
        "staff_judgments": staff["judgments"],
        "staff_queries": staff["queries"],
        "all_judgments": everyone["judgments"],
        "all_queries": everyone["queries"],
    }


@staff_member_required
@require_POST
def job_start(request: HttpRequest) -> HttpResponse:
    """Start an evaluation run on the judgments in a process of its own, then show its progress (PRG)."""
    try:
        job = jobs.job_start(user=request.user, include_public=request.POST.get("include_public") == "1")
    except jobs.JobRefused as error:
        return render(request, "evaluation/job_refused.html", {"message": str(error)}, status=409)
    return HttpResponseRedirect(reverse("evaluation:job", args=[job.pk]))


@staff_member_required
@require_GET
def job_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Render a job's progress; the page reloads itself (no script) until the job ends."""
    job = jobs.job_check(get_object_or_404(EvaluationJob.objects.select_related("run", "started_by"), pk=pk))
    return render(request, "evaluation/job.html", {"job": job, "reload_seconds": JOB_RELOAD_SECONDS})


# How often a running job's page reloads itself.
JOB_RELOAD_SECONDS = 2


@staff_member_required
@require_GET
def run_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Render one run: its tables (all queries, each language), chart, and the queries it moved most."""
    run = get_object_or_404(EvaluationRun, pk=pk)
    return render(request, "evaluation/run.html", pages.run_context(run))


@staff_member_required
@require_GET
def run_chart(request: HttpRequest, pk: int) -> HttpResponse:
    """Return a run's chart (PNG), stored with it."""
    chart = EvaluationRun.objects.filter(pk=pk).values_list("chart_png", flat=True).first()
    if not chart:
        raise Http404("No chart for this run.")
    return HttpResponse(bytes(chart), content_type="image/png")
