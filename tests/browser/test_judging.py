"""A real Chromium judges results on the live site (no script), and a staff member reads the evaluation page."""

from __future__ import annotations

import pytest

from tests.support.browser import open_page

pytestmark = [pytest.mark.browser]

STAFF_NAME, STAFF_PASSWORD = "browser-staff", "browser-staff-pw-1"
QUERY = "python snake diet"


@pytest.fixture(scope="module")
def committed(django_db_blocker, live_site):
    """A staff account and one stored run with a real chart, committed for the live site; removed after."""
    from django.contrib.auth.models import User

    from evaluation.models import EvaluationRun, Judgment
    from evaluation.runs import chart_png, evaluation_run_store

    metrics = {"mrr@5": 0.5, "recall@3": 0.5, "top1": 0.25, "ndcg@10": 0.41, "recall@k_initial": 0.9}
    better = {**metrics, "mrr@5": 0.8, "top1": 0.6, "ndcg@10": 0.63}
    report = {
        "dataset": "site-judgments",
        "model": "tiny-cross-encoder",
        "model_info": {"model": "tiny-cross-encoder", "kind": "cross-encoder", "languages": []},
        "k_initial": 50,
        "queries": 3,
        "fulltext": metrics,
        "reranked": better,
        "languages": {
            "en": {"queries": 2, "fulltext": metrics, "reranked": better},
            "zh": {"queries": 1, "fulltext": metrics, "reranked": metrics},
        },
        "judgments": {"selection": "staff judgments", "judgments": 9, "judges": 2, "stale": [], "stale_kept": False},
        "movers": {"helped": [], "hurt": []},
        "rerank_status": {"ok": 3},
        "reranking": True,
    }
    with django_db_blocker.unblock():
        user = User.objects.create_user(STAFF_NAME, password=STAFF_PASSWORD, is_staff=True)
        run = evaluation_run_store(report=report, name="browser test run", chart_png=chart_png(report))
    yield run
    with django_db_blocker.unblock():
        Judgment.objects.filter(query=QUERY, user__isnull=True).delete()
        EvaluationRun.objects.filter(pk=run.pk).delete()
        user.delete()


def test_it_judges_a_result_with_plain_forms_and_shows_the_choice(committed, browser, live_site, artifacts_dir):
    page = open_page(browser, 1280, 900)
    page.goto(live_site + "/search?q=python+snake+diet")
    first = page.locator("#reranked .result").first
    document_id = first.get_attribute("data-document-id")
    first.locator("button.judge-yes").click()
    page.wait_for_url(f"**#reranked-{document_id}")
    judged = page.locator(f"#reranked-{document_id}")
    assert "You judged: relevant" in judged.locator(".judge-label").inner_text()
    assert judged.locator("button.judge-yes").get_attribute("aria-pressed") == "true"
    # The same document in the other column shows the same judgment.
    assert page.locator(f"#fulltext-{document_id} button.judge-yes").get_attribute("aria-pressed") == "true"
    second = page.locator("#fulltext .result").nth(1)
    second.locator("button.judge-no").click()
    page.wait_for_selector("#fulltext .result .judge-no.chosen")
    page.screenshot(path=str(artifacts_dir / "desktop-judged.png"), full_page=False)
    # A phone: the controls fit the viewport.
    phone = open_page(browser, 390, 844)
    phone.goto(live_site + "/search?q=python+snake+diet")
    phone.wait_for_selector("#reranked .judge")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(artifacts_dir / "phone-judging.png"), full_page=False)
    page.close()
    phone.close()


def test_it_shows_the_evaluation_page_to_staff_only(committed, browser, live_site, artifacts_dir):
    page = open_page(browser, 1280, 900)
    page.goto(live_site + "/evaluation/")
    assert "/admin/login/" in page.url  # anonymous: the login page, no figures
    page.fill("input[name=username]", STAFF_NAME)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/evaluation/")
    page.click("text=browser test run")
    page.wait_for_selector("img.chart")
    # The element comes before its PNG: the page's load event waits for the image (the page timeout).
    page.wait_for_load_state("load")
    assert page.evaluate("document.querySelector('img.chart').naturalWidth") > 300  # the PNG loaded
    tables = page.locator("table.metrics")
    assert tables.count() == 3  # all queries, en, zh
    assert "+0.220" in tables.first.inner_text()
    page.screenshot(path=str(artifacts_dir / "desktop-evaluation-run.png"), full_page=True)
    page.close()
