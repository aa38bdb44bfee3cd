"""The browser fixture: one headless Chromium context per module, against the live site."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, LAUNCH_ARGS, PAGE_TIMEOUT_MS, REQUIRED


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
        context = browser.new_context()
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        yield context
        context.close()
        browser.close()
