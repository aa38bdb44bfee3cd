"""Pages of the evaluation app: judging a result (a plain form, then back), and the staff's runs."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from evaluation import judgments, pages
from evaluation.models import GRADE_NOT_RELEVANT, GRADE_RELEVANT, EvaluationRun
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
    return render(request, "evaluation/runs.html", {"runs": runs, "rows": pages.run_rows(runs)})


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
