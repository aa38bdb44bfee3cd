"""A real Chromium pages past the rerank pool, reads the true count and the facets' counts, and
narrows by date, on a desktop and a phone (no script: links and a <details> disclosure)."""

from __future__ import annotations

import re

import pytest

from tests.support.browser import open_page
from tests.support.processes import ROOT

pytestmark = [pytest.mark.browser]

SCREENSHOTS = ROOT / "docs" / "screenshots"
# More documents hold it than one pool of 10 (the sample library's common English word).
COMMON_WORD = "time"


def total_of(page) -> int:
    text = page.locator(".summary .total").inner_text()
    found = re.match(r"(?:about )?(\d+) results?", text)
    assert found, text
    return int(found.group(1))


@pytest.mark.parametrize(("device", "width", "height"), [("desktop", 1280, 900), ("phone", 390, 844)])
def test_it_pages_past_the_pool_in_the_full_text_order_with_the_true_count(browser, live_site, device, width, height):
    SCREENSHOTS.mkdir(exist_ok=True)
    page = open_page(browser, width, height)
    page.goto(f"{live_site}/search?q={COMMON_WORD}&k=5&k_initial=10")
    page.wait_for_selector("#fulltext .result", state="attached")
    total = total_of(page)
    assert total > 10
    # The chips count each language: "All" counts every match.
    assert page.locator(".languages .chip.current .count").inner_text() == str(total)
    assert "reranked: the first 10 (pages 1–2)" in page.locator(".summary").inner_text()
    page.click(".results-pager a:has-text('3')")
    page.wait_for_url("**page=3**")
    # Past the pool: the full-text order goes on (ranks 11-15); the reranked column says why it is empty.
    assert page.locator("#fulltext .rank").all_inner_texts() == ["11", "12", "13", "14", "15"]
    assert page.locator("#fulltext").is_visible()  # a phone opens on the full-text tab here
    assert "reranked order covers pages 1–2" in page.locator("details.ranking summary").inner_text()
    assert total_of(page) == total
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(SCREENSHOTS / f"{device}-past-the-pool.png"))

    # The source and date facets open from a disclosure; a date filter narrows, its count says how much.
    page.click("details.more-filters summary")
    year = page.locator(".facet.added a.chip:has-text('Past year')")
    expected = int(year.locator(".count").inner_text().lstrip("~"))
    page.screenshot(path=str(SCREENSHOTS / f"{device}-facets.png"))
    year.click()
    page.wait_for_url("**added=year**")
    assert total_of(page) == expected and "q=time" in page.url
    page.close()
