"""A real Chromium, driven by Playwright, searches the live site (real web + worker processes)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = os.environ.get("SEARCHSITE_REQUIRE_BROWSER") == "1"
# Flags for a sandboxed, offline machine: no sandbox as root, no background network calls.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def browser(live_site):
    # Depends on live_site so the database work is done before Playwright starts its event loop.
    if not Path(CHROMIUM).exists():
        if REQUIRED:
            pytest.fail("SEARCHSITE_REQUIRE_BROWSER=1 but Debian's chromium is not installed")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield browser
        browser.close()


def search(browser, base_url: str, query: str, width: int, height: int, shot: Path):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(base_url + "/")
    page.fill("input[name=q]", query)
    page.press("input[name=q]", "Enter")
    page.wait_for_selector("#fulltext .result")
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
    assert "Reranker:" in page.locator(".model").inner_text()
    # Every reranked result shows its movement against the full-text order.
    assert page.locator("#reranked .move").count() == reranked.count()
    page.close()


def test_it_stacks_the_columns_on_a_phone(browser, live_site, artifacts_dir):
    page = search(browser, live_site, "jaguar speed", 390, 844, artifacts_dir / "phone-jaguar.png")
    full = page.locator("#fulltext").bounding_box()
    rerank = page.locator("#reranked").bounding_box()
    # Stacked, reranked order first: one column lies wholly above the other.
    assert full["y"] >= rerank["y"] + rerank["height"] - 1
    assert full["width"] <= 390
    # Nothing overflows the viewport horizontally.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
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
