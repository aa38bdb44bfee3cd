"""A real Chromium, driven by Playwright, searches the live site (real web + worker processes)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.browser import open_page

pytestmark = [pytest.mark.browser]


def search(browser, base_url: str, query: str, width: int, height: int, shot: Path):
    page = open_page(browser, width, height)
    page.goto(base_url + "/")
    page.fill("input[name=q]", query)
    page.press("input[name=q]", "Enter")
    page.wait_for_selector("#fulltext .result", state="attached")  # on a phone it may be the hidden tab
    # Results as you type (static/js/live.js) show the full-text order first: wait for the reranked.
    page.wait_for_selector("#reranked .notice.pending", state="detached")
    page.screenshot(path=str(shot), full_page=True)
    return page


@pytest.mark.parametrize(
    ("query", "expected_term"),
    [("苹果营养价值", "苹果"), ("python snake diet", "snake")],
)
def test_it_shows_both_columns_for_a_keyword_trap(browser, live_site, artifacts_dir, query, expected_term):
    page = search(browser, live_site, query, 1280, 900, artifacts_dir / f"desktop-{expected_term}.png")
    fulltext = page.locator("#fulltext .result")
    reranked = page.locator("#reranked .result")
    assert fulltext.count() > 0
    assert reranked.count() == fulltext.count(), page.locator(".notice").all_inner_texts()
    marks = [text.lower() for text in page.locator("#fulltext mark").all_inner_texts()]
    assert any(text.startswith(expected_term[:4]) for text in marks), marks
    assert "Reranker:" in page.locator(".ranking .model").text_content()  # behind the disclosure
    # Every reranked result shows its movement against the full-text order.
    assert page.locator("#reranked .move").count() == reranked.count()
    page.close()


def test_it_switches_between_the_orderings_on_a_phone(browser, live_site, artifacts_dir):
    page = search(browser, live_site, "jaguar speed", 390, 844, artifacts_dir / "phone-jaguar.png")
    # One ordering at a time: the reranked one first, the full-text one a tap away.
    assert page.locator("#reranked").is_visible()
    assert not page.locator("#fulltext").is_visible()
    page.click("label[for=show-fulltext]")
    assert page.locator("#fulltext").is_visible()
    assert not page.locator("#reranked").is_visible()
    page.screenshot(path=str(artifacts_dir / "phone-jaguar-fulltext.png"), full_page=True)
    page.click("label[for=show-reranked]")
    assert page.locator("#reranked").is_visible()
    # Nothing overflows the viewport horizontally.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.close()


def test_it_shows_both_orderings_side_by_side_on_a_desktop(browser, live_site, artifacts_dir):
    page = search(browser, live_site, "jaguar speed", 1280, 900, artifacts_dir / "desktop-jaguar.png")
    full = page.locator("#fulltext").bounding_box()
    rerank = page.locator("#reranked").bounding_box()
    assert abs(full["y"] - rerank["y"]) < 2 and full["x"] < rerank["x"]
    assert not page.locator(".switcher").is_visible()
    page.close()


def test_it_pages_through_results_keeping_the_query_and_the_filter(browser, live_site, artifacts_dir):
    page = open_page(browser, 1280, 900)
    page.goto(live_site + "/search?q=time&k=5")
    page.wait_for_selector("#fulltext .result")
    page.click(".languages a:has-text('English')")
    page.wait_for_url("**lang=en**")
    page.click(".results-pager a:has-text('2')")
    page.wait_for_url("**page=2**")
    assert "lang=en" in page.url and "q=time" in page.url
    ranks = page.locator("#fulltext .rank").all_inner_texts()
    assert ranks[0] == "6", ranks
    assert set(page.locator("#fulltext .lang").all_inner_texts()) <= {"en", "mixed"}
    page.screenshot(path=str(artifacts_dir / "desktop-time-page2.png"), full_page=True)
    # A document opened from page 2 leads back to page 2.
    results_url = page.url
    page.click("#fulltext .result a.title >> nth=0")
    page.wait_for_selector("article.document")
    page.click("p.back a")
    page.wait_for_selector("#fulltext .result")
    assert parse_qs(urlsplit(page.url).query) == parse_qs(urlsplit(results_url).query)
    assert page.locator("#fulltext .rank").all_inner_texts()[0] == "6"
    page.close()


def test_it_offers_a_correction_for_a_misspelt_query(browser, live_site, artifacts_dir):
    page = open_page(browser, 1280, 900)
    page.goto(live_site + "/search?q=pythn+snake")
    page.wait_for_selector(".suggestion a")
    page.screenshot(path=str(artifacts_dir / "desktop-did-you-mean.png"), full_page=True)
    page.click(".suggestion a")
    page.wait_for_selector("#fulltext .result")
    assert page.locator("input[name=q]").input_value() == "python snake"
    page.close()


def test_it_shows_a_document_title_with_html_as_text(browser, live_site, artifacts_dir):
    page = browser.new_page()
    page.goto(live_site + "/search?q=" + "%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    page.wait_for_load_state("networkidle")
    assert page.locator("input[name=q]").input_value() == "<script>alert(1)</script>"
    assert dialogs == []
    page.close()
