"""The reranker's notice is one short line, its details behind a disclosure, on a desktop and a phone.

A site of this module's own (a real web process and a real worker on a queue of its own) is
started as `make run` is offline: the configured model cannot load, so the worker serves the
packaged all-MiniLM-L6-v2 bi-encoder instead. That gives the page all three of the lines that
used to fill a phone's first screen: the stand-in notice, the "Reranker:" line and the blend line.
"""

from __future__ import annotations

import uuid

import pytest
from django.test.utils import override_settings

from tests.support.browser import open_page
from tests.support.processes import ROOT, start_site, start_worker
from tests.support.session import child_env, wait_for_worker

pytestmark = [pytest.mark.browser]

UNLOADABLE_MODEL = "/nonexistent/reranker-for-the-notice-tests"
QUERY = "python snake diet"
# The stand-in embeds each candidate's chunks on the spot; a loaded 2-core machine is slow.
GENEROUS_SECONDS = "120"
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="module")
def fallback_site(artifacts_dir, live_site):
    # After live_site: the database is set up before Playwright starts its event loop.
    queue = f"rerank-notice-{uuid.uuid4().hex[:8]}"
    worker = start_worker(
        child_env(),
        artifacts_dir / f"worker-{queue}.log",
        queue=queue,
        model=UNLOADABLE_MODEL,
        extra_env={"RERANKER_FALLBACK_MODEL": "packaged-minilm"},
    )
    try:
        with override_settings(RERANK_QUEUE=queue):
            status = wait_for_worker(worker)
        assert status.get("ready") and status["model"]["fallback_reason"], status
        web, base_url = start_site(
            child_env(RERANK_QUEUE=queue, RERANK_TIMEOUT=GENEROUS_SECONDS, RERANK_CACHE_SECONDS="600"),
            artifacts_dir / f"web-{queue}.log",
        )
        yield base_url
        web.stop()
    finally:
        worker.stop()


def open_results(browser, base_url: str, width: int, height: int):
    page = open_page(browser, width, height)
    page.goto(f"{base_url}/search?q={QUERY.replace(' ', '+')}")
    page.wait_for_selector("#reranked .result", state="attached")
    return page


@pytest.mark.parametrize(("device", "width", "height"), [("desktop", 1280, 900), ("phone", 390, 844)])
def test_the_stand_in_notice_is_one_short_line_with_its_details_a_click_away(
    fallback_site, browser, device, width, height
):
    page = open_results(browser, fallback_site, width, height)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{device}-notice-closed.png"))
    ranking = page.locator("details.ranking")
    line = ranking.locator("summary")
    assert ranking.count() == 1 and ranking.get_attribute("open") is None
    assert "Stand-in reranker: all-MiniLM-L6-v2" in line.inner_text()
    # One line: no taller than the summary line's own line height plus its padding and border.
    line_height = float(line.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)"))
    assert line.bounding_box()["height"] < 2 * line_height
    # The long lines are closed away, and no notice paragraph repeats them above the results.
    for hidden in (".ranking-notice", ".model", ".blend"):
        assert not ranking.locator(hidden).is_visible(), hidden
    assert page.locator("p.notice").count() == 0, page.locator("p.notice").all_inner_texts()
    # The first result starts within the first screen, on a phone too.
    first = page.locator("#reranked .result").first.bounding_box()
    assert first["y"] < height / 2, first
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    line.click()
    assert ranking.get_attribute("open") is not None
    assert f"{UNLOADABLE_MODEL} is not loaded" in ranking.locator(".ranking-notice").inner_text()
    assert "Reranker:" in ranking.locator(".model").inner_text()
    assert "× BM25" in ranking.locator(".blend").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(SCREENSHOTS / f"{device}-notice-open.png"))
    page.close()
