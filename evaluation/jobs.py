"""Evaluation runs started from the staff's page: a job row, and a process of its own that runs
`manage.py evaluate --judgments --job ID` and writes its progress into that row.

Never in the request: the web process only inserts the row and starts the process. Not a task
on the rerank worker either: the worker needs no database (docs/architecture.md, "Invariants"), and an evaluation
reads the judgments and the library and stores its run. The process reranks through the running
worker, as `evaluate` does from a terminal.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from evaluation.models import EvaluationJob, EvaluationRun, JobStatus

logger = logging.getLogger(__name__)

# A job whose process has written nothing for this long counts as stopped. Each query writes
# its progress; one query waits at most `evaluate`'s rerank budget (60 s) and its search.
STALE_AFTER_SECONDS = 180
# The recent jobs the evaluation page lists.
JOBS_LISTED = 5


class JobRefused(Exception):
    """Another job is under way (or the process could not be started); the page says so."""


def _host() -> str:
    return socket.gethostname()[:255]


def _process_gone(job: EvaluationJob) -> bool:
    """Return whether the job's process is known to have exited (only a process on this host can be asked)."""
    if not job.pid or job.host != _host():
        return False
    try:
        os.kill(job.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A zombie (exited, not yet reaped by its parent) still answers signal 0.
    try:
        return Path(f"/proc/{job.pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def job_check(job: EvaluationJob) -> EvaluationJob:
    """Return the job, marked failed when its process stopped without saying (SQL: at most one update)."""
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        return job
    quiet = timezone.now() - job.updated_at
    if _process_gone(job):
        reason = "the evaluation process exited without finishing (see the web server's log)"
    elif quiet > timedelta(seconds=STALE_AFTER_SECONDS):
        reason = f"no progress for {quiet.total_seconds():.0f} s: the evaluation process has stopped"
    else:
        return job
    # Only if still active: the process may have finished between the read and now.
    now = timezone.now()
    EvaluationJob.objects.filter(pk=job.pk, active=True).update(
        status=JobStatus.FAILED, active=False, message=reason, finished_at=now, updated_at=now
    )
    job.refresh_from_db()
    return job


def jobs_recent() -> list[EvaluationJob]:
    """Return the newest jobs, each checked for a process that stopped (SQL: one query, and an
    update for each job found dead)."""
    return [job_check(job) for job in EvaluationJob.objects.select_related("run", "started_by")[:JOBS_LISTED]]


def job_command(job: EvaluationJob) -> list[str]:
    command = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "evaluate", "--judgments"]
    if job.include_public:
        command.append("--include-public")
    return [*command, "--job", str(job.pk)]


def _child_env() -> dict[str, str]:
    """Return the environment of the job's process: this one's, on this process's database (the
    name in DATABASE_URL can differ from the one in use, as under a test run)."""
    env = dict(os.environ)
    url = env.get("DATABASE_URL")
    name = settings.DATABASES["default"]["NAME"]
    if url and name:
        env["DATABASE_URL"] = urlunsplit(urlsplit(url)._replace(path="/" + str(name)))
    return env


def job_start(*, user, include_public: bool = False) -> EvaluationJob:
    """Return a new job with its process started (SQL: a few statements; starts one process).

    Raises JobRefused when a job is still under way; one whose process stopped is marked failed first.
    """
    for job in EvaluationJob.objects.filter(active=True):
        job = job_check(job)
        if job.active:
            raise JobRefused(f"Evaluation job {job.pk} is still under way ({job.done} of {job.total or '?'} queries).")
    try:
        with transaction.atomic():
            job = EvaluationJob.objects.create(started_by=user, include_public=include_public)
    except IntegrityError:
        raise JobRefused("Another evaluation job was started a moment ago.") from None
    log_dir = Path(os.environ.get("SEARCHSITE_DATA_DIR", Path(settings.BASE_DIR) / ".data")) / "evaluation-jobs"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / f"job-{job.pk}.log", "ab") as log:
            process = subprocess.Popen(
                job_command(job),
                cwd=settings.BASE_DIR,
                env=_child_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not stopped with the request's process group
            )
    except OSError as error:
        job_finish(job, status=JobStatus.FAILED, message=f"the evaluation process could not start: {error}")
        raise JobRefused(f"The evaluation process could not start: {error}") from error
    # Reap it when it exits, so no zombie is left behind while the web process lives.
    threading.Thread(target=process.wait, name=f"evaluation-job-{job.pk}", daemon=True).start()
    EvaluationJob.objects.filter(pk=job.pk, pid__isnull=True).update(pid=process.pid, host=_host())
    job.refresh_from_db()
    logger.info("evaluation job %s: started process %s", job.pk, process.pid)
    return job


# --- what the job's process calls (evaluate --job) ---------------------------------------------


def job_begin(job_id: int) -> EvaluationJob:
    """Return the job, marked running in this process (SQL: two statements)."""
    job = EvaluationJob.objects.get(pk=job_id)
    EvaluationJob.objects.filter(pk=job_id).update(
        status=JobStatus.RUNNING,
        pid=os.getpid(),
        host=_host(),
        message="reading the judgments",
        updated_at=timezone.now(),
    )
    job.refresh_from_db()
    return job


def job_progress(job: EvaluationJob, *, done: int, total: int, message: str = "") -> None:
    """Record how far the job is, and that its process is alive (SQL: one update)."""
    EvaluationJob.objects.filter(pk=job.pk).update(done=done, total=total, message=message, updated_at=timezone.now())


def job_finish(job: EvaluationJob, *, status: str, message: str = "", run: EvaluationRun | None = None) -> None:
    """Record the job's end: done with its run, or failed and why (SQL: one update)."""
    now = timezone.now()
    EvaluationJob.objects.filter(pk=job.pk).update(
        status=status, active=False, message=message[:2000], run=run, finished_at=now, updated_at=now
    )
    job.refresh_from_db()
