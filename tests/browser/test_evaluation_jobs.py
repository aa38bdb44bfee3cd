"""A staff member opens the evaluation page from the header, starts a run on their judgments, and
watches it finish: the live site's web process starts `evaluate --judgments --job` as a process
of its own, which reranks through the session's real worker and stores its run."""

from __future__ import annotations

import pytest

from tests.support.browser import open_page
from tests.support.processes import ROOT

pytestmark = [pytest.mark.browser]

STAFF_NAME, STAFF_PASSWORD = "browser-evaluator", "browser-evaluator-pw-1"
QUERIES = ("python snake diet", "苹果营养价值")
SCREENSHOTS = ROOT / "docs" / "screenshots"
# A run of two queries through the tiny model takes seconds; a loaded 2-core machine is slower.
RUN_FINISHES_MS = 180_000


@pytest.fixture(scope="module")
def staff_judgments(django_db_blocker, live_site):
    """A staff account with two committed judgments of the library; removed after, with what it started."""
    from django.contrib.auth.models import User

    from documents.models import LIBRARY, Document
    from documents.textsearch import detect_language
    from evaluation.models import EvaluationJob, EvaluationRun, Judgment

    with django_db_blocker.unblock():
        user = User.objects.create_user(STAFF_NAME, password=STAFF_PASSWORD, is_staff=True)
        documents = list(Document.objects.filter(collection=LIBRARY).order_by("id")[: len(QUERIES)])
        for query, document in zip(QUERIES, documents, strict=True):
            Judgment.objects.create(
                query=query,
                language=detect_language(query),
                document=document,
                document_hash=document.content_hash,
                grade=1,
                user=user,
                by_staff=True,
            )
    yield user
    with django_db_blocker.unblock():
        started = EvaluationJob.objects.filter(started_by=user)
        EvaluationRun.objects.filter(pk__in=started.values("run")).delete()
        started.delete()
        Judgment.objects.filter(user=user).delete()
        user.delete()


def log_in(page, base_url: str) -> None:
    page.goto(base_url + "/admin/login/?next=/")
    page.fill("input[name=username]", STAFF_NAME)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(base_url + "/")


def test_staff_start_a_run_from_the_page_and_see_it_finish(staff_judgments, browser, live_site):
    SCREENSHOTS.mkdir(exist_ok=True)
    page = open_page(browser, 1280, 900)
    log_in(page, live_site)
    page.click("header.site-header a:has-text('Evaluation')")
    page.wait_for_url("**/evaluation/")
    assert "2 staff judgments of 2 queries" in page.locator(".start-run").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "desktop-evaluation-start.png"), full_page=True)

    page.click("button.start-button")
    page.wait_for_url("**/evaluation/jobs/*")
    assert page.locator(".job").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "desktop-evaluation-job.png"), full_page=True)  # most likely under way
    # The page reloads itself until the process reports the end; no script.
    page.wait_for_selector(".job-done", timeout=RUN_FINISHES_MS)
    assert "2 queries evaluated" in page.locator(".job").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "desktop-evaluation-finished.png"), full_page=True)
    page.click("a.job-run")
    page.wait_for_url("**/evaluation/runs/*")
    assert "nDCG@10" in page.content()

    phone = open_page(browser, 390, 844)
    phone.goto(live_site + "/evaluation/")
    header = phone.locator("header.site-header")
    assert header.locator("a:has-text('Evaluation')").is_visible()
    # The header keeps to one line on a phone, the staff's link included.
    assert header.locator("nav").bounding_box()["height"] < 2 * header.locator(".brand").bounding_box()["height"]
    assert phone.locator("button.start-button").is_visible()  # the job ended: a new run may start
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(SCREENSHOTS / "phone-evaluation.png"), full_page=True)
    phone.close()
    page.close()
