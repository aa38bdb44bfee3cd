"""Evaluation one click away: the header links staff to /evaluation/, and a run on the judgments
starts from the page, in a process of its own that reports its progress (evaluation.jobs).

The process itself, started by the live site's web process, is driven end to end by
tests/browser/test_evaluation_jobs.py; here the page, the refusals, and the command's progress
reports (run in this process, on this test's judgments and the session's real worker).
"""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from evaluation import jobs
from evaluation.models import EvaluationJob, EvaluationRun, JobStatus

pytestmark = pytest.mark.django_db

EVALUATION_LINK = '<a href="/evaluation/">Evaluation</a>'


def judge(api, query: str, document_id: int, relevant: bool) -> None:
    response = api.post(
        "/api/v1/judgments", {"query": query, "document_id": document_id, "relevant": relevant}, format="json"
    )
    assert response.status_code == 201, response.content


def test_the_header_links_staff_to_the_evaluation_page_and_no_one_else(client, staff_client, plain_user):
    assert EVALUATION_LINK in staff_client.get("/").content.decode()
    assert EVALUATION_LINK in staff_client.get("/search", {"q": "apple"}).content.decode()
    assert EVALUATION_LINK not in client.get("/").content.decode()
    reader = Client()
    reader.force_login(plain_user)
    assert EVALUATION_LINK not in reader.get("/").content.decode()


def test_the_page_offers_a_run_on_the_judgments_with_their_counts(staff_client, staff_api, anon_api, documents):
    judge(staff_api, "apple nutrition", documents[0].pk, True)
    judge(staff_api, "apple nutrition", documents[1].pk, False)
    judge(anon_api, "apple storage", documents[3].pk, True)
    page = staff_client.get("/evaluation/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'action="/evaluation/jobs"' in html and "Start a run" in html and "csrfmiddlewaretoken" in html
    assert "2 staff judgments of 1 query; 3 with visitors' (2 queries)" in html
    assert "then run <code>manage.py evaluate --judgments</code>" not in html


def test_only_staff_may_start_a_run_and_only_by_post(client, plain_user, staff_client):
    response = client.post("/evaluation/jobs")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    reader = Client()
    reader.force_login(plain_user)
    assert reader.post("/evaluation/jobs").status_code == 302
    assert staff_client.get("/evaluation/jobs").status_code == 405
    assert not EvaluationJob.objects.exists()


def test_a_second_run_is_refused_while_one_is_under_way(staff_client, staff_user):
    running = EvaluationJob.objects.create(status=JobStatus.RUNNING, done=2, total=7, started_by=staff_user)
    response = staff_client.post("/evaluation/jobs")
    assert response.status_code == 409
    assert f"Evaluation job {running.pk} is still under way (2 of 7 queries)." in response.content.decode()
    assert EvaluationJob.objects.count() == 1
    # The page shows the job under way instead of the form, and the job's page its progress.
    page = staff_client.get("/evaluation/").content.decode()
    assert "Start a run" not in page and "2 of 7 queries" in page
    job_page = staff_client.get(f"/evaluation/jobs/{running.pk}").content.decode()
    assert '<progress max="7" value="2">' in job_page and 'http-equiv="refresh"' in job_page


def test_a_job_whose_process_stopped_is_marked_failed_and_no_longer_blocks(staff_user):
    # A real process of ours that has exited: its pid is gone.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    exited = EvaluationJob.objects.create(
        status=JobStatus.RUNNING, pid=int(gone.stdout), host=jobs._host(), started_by=staff_user
    )
    assert jobs.job_check(exited).status == JobStatus.FAILED
    assert "exited without finishing" in exited.message and not exited.active
    quiet = EvaluationJob.objects.create(status=JobStatus.RUNNING, started_by=staff_user)
    EvaluationJob.objects.filter(pk=quiet.pk).update(
        updated_at=timezone.now() - timedelta(seconds=jobs.STALE_AFTER_SECONDS + 1)
    )
    quiet.refresh_from_db()
    assert jobs.job_check(quiet).status == JobStatus.FAILED and "no progress for" in quiet.message


def test_the_command_reports_progress_and_its_run_to_the_job(staff_api, staff_user, documents, rerank_worker):
    judge(staff_api, "apple nutrition", documents[0].pk, True)
    judge(staff_api, "apple storage", documents[3].pk, True)
    job = EvaluationJob.objects.create(started_by=staff_user)
    call_command("evaluate", "--judgments", "--job", str(job.pk), stdout=io.StringIO(), stderr=io.StringIO())
    job.refresh_from_db()
    run = EvaluationRun.objects.get()
    assert (job.status, job.active, job.done, job.total, job.run_id) == (JobStatus.DONE, False, 2, 2, run.pk)
    assert run.queries == 2 and run.source == "judgments"
    assert job.finished_at is not None and job.pid is not None


def test_the_command_says_why_it_failed_to_the_job(staff_user):
    job = EvaluationJob.objects.create(started_by=staff_user)
    with pytest.raises(CommandError, match="no judged query with a relevant document"):
        call_command("evaluate", "--judgments", "--job", str(job.pk), stdout=io.StringIO(), stderr=io.StringIO())
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and not job.active
    assert "no judged query with a relevant document" in job.message
