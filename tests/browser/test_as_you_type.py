"""Results as you type (static/js/live.js) in a real Chromium against the live site.

The reranked order's request is held back (Playwright routes it, then lets the real request go on)
so the page can be seen between the two orderings: the full-text order in, the reranked one coming.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from tests.support.browser import PAGE_TIMEOUT_MS, open_page
from tests.support.processes import ROOT

pytestmark = [pytest.mark.browser]

RERANKED_REQUESTS = "**/search/results?*rerank=1*"
# The screenshots of results as you type that the README shows.
SCREENSHOTS = ROOT / "docs" / "screenshots"


def held_requests(page):
    """Hold every request for the reranked order until the test lets it go."""
    held: list = []
    page.route(RERANKED_REQUESTS, lambda route: held.append(route))
    return held


def release(page, held: list) -> None:
    """Wait (bounded) for a held request, then let every held request go on to the live site."""
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the reranked order was never asked for"
    page.unroute(RERANKED_REQUESTS)
    let_go(held)


def let_go(routes: list) -> None:
    """Send held requests on to the live site; one the page has aborted since is gone."""
    from playwright.sync_api import Error

    for route in routes:
        with contextlib.suppress(Error):
            route.continue_()


def marks(page, column: str) -> list[str]:
    return [text.lower() for text in page.locator(f"#{column} mark").all_inner_texts()]


def test_results_follow_the_typing_full_text_first_then_reranked(browser, live_site):
    SCREENSHOTS.mkdir(exist_ok=True)
    page = open_page(browser, 1280, 900)
    held = held_requests(page)
    page.goto(live_site + "/")
    page.evaluate("window.samePage = true")  # gone if the browser loads a page
    page.locator("input[name=q]").focus()
    page.keyboard.type("python snake", delay=20)

    # The full-text order at once, the reranked order announced as coming; no page load, focus kept.
    page.wait_for_selector("#reranked .notice.pending")
    assert page.locator("#fulltext .result").count() > 0
    assert any(mark.startswith(("python", "snake")) for mark in marks(page, "fulltext"))
    assert page.locator("#reranked .result").count() == 0
    assert "reranking" in page.locator("#live-status").text_content()
    assert page.evaluate("window.samePage") is True
    assert page.evaluate("document.activeElement.name") == "q"
    assert page.url.endswith("/search?q=python+snake")
    assert page.title() == "python snake · Reranked search"
    page.screenshot(path=str(SCREENSHOTS / "desktop-as-you-type-pending.png"), full_page=True)

    # The reranked order fills in when it comes.
    release(page, held)
    page.wait_for_selector("#reranked .result")
    assert page.locator("#reranked .result").count() == page.locator("#fulltext .result").count()
    assert "reranked order ready" in page.locator("#live-status").text_content()
    assert page.evaluate("document.activeElement.name") == "q"
    page.screenshot(path=str(SCREENSHOTS / "desktop-as-you-type.png"), full_page=True)

    # Enter keeps this search in the history; typing another gets an entry of its own.
    page.keyboard.press("Enter")
    page.keyboard.press("Control+A")
    page.keyboard.type("jaguar speed", delay=20)
    page.wait_for_url("**/search?q=jaguar+speed")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#fulltext mark')].some(m => /^jaguar/i.test(m.textContent))"
    )
    assert page.evaluate("window.samePage") is True

    # Back shows the earlier search's results and puts its query back in the box; back again, the
    # page as it was opened; forward, the later search.
    page.go_back()
    page.wait_for_url("**/search?q=python+snake")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#fulltext mark')].some(m => /^python/i.test(m.textContent))"
    )
    assert page.locator("input[name=q]").input_value() == "python snake"
    page.go_back()
    page.wait_for_selector("#results-region .intro")
    assert page.locator("input[name=q]").input_value() == ""
    assert page.title() == "Reranked search"
    page.go_forward()
    page.wait_for_selector("#fulltext .result")
    assert page.locator("input[name=q]").input_value() == "python snake"
    assert page.evaluate("window.samePage") is True
    page.close()


def test_a_late_answer_to_an_older_query_is_dropped(browser, live_site):
    page = open_page(browser, 1280, 900)
    late: list = []
    page.route("**/search/results?q=mercury*", lambda route: late.append(route))  # the first query's answers wait
    page.goto(live_site + "/")
    page.locator("input[name=q]").focus()
    page.keyboard.type("mercury", delay=20)
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while not late and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert late, "the first query was never sent"
    page.keyboard.press("Control+A")
    page.keyboard.type("jaguar", delay=20)
    page.wait_for_selector("#reranked .result")
    assert any(mark.startswith("jaguar") for mark in marks(page, "fulltext"))
    # The older query's answer now comes (or was aborted): the newer results stay.
    page.unroute("**/search/results?q=mercury*")
    let_go(late)
    page.evaluate("() => fetch('/search/results?rerank=0&q=jaguar').then(r => r.text())")  # a round trip
    assert not any(mark.startswith("mercury") for mark in marks(page, "fulltext"))
    assert page.locator("input[name=q]").input_value() == "jaguar"
    assert page.url.endswith("/search?q=jaguar")
    page.close()


def test_on_a_phone_the_full_text_tab_shows_until_the_reranked_order_comes(browser, live_site):
    SCREENSHOTS.mkdir(exist_ok=True)
    page = open_page(browser, 390, 844)
    held = held_requests(page)
    page.goto(live_site + "/")
    page.locator("input[name=q]").focus()
    page.keyboard.type("jaguar speed", delay=20)
    page.wait_for_selector("#reranked .notice.pending", state="attached")
    assert page.locator("#fulltext").is_visible() and not page.locator("#reranked").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "phone-as-you-type-pending.png"), full_page=True)
    release(page, held)
    page.wait_for_selector("#reranked .result")
    assert page.locator("#reranked").is_visible() and not page.locator("#fulltext").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SCREENSHOTS / "phone-as-you-type.png"), full_page=True)
    page.close()


def test_without_javascript_the_form_still_searches(browser, live_site):
    context = browser.browser.new_context(java_script_enabled=False)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.goto(live_site + "/")
    page.fill("input[name=q]", "jaguar speed")
    assert page.locator("#fulltext .result").count() == 0  # nothing follows the typing
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**/search?q=jaguar+speed")
    assert page.locator("#reranked .result").count() == page.locator("#fulltext .result").count() > 0
    assert page.locator("#live-status").text_content() == ""
    context.close()
