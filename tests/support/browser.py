"""Chromium for the browser tests: where it is, how it is launched offline, a page of a given size."""

from __future__ import annotations

import os
import shutil

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
# A search may take the whole rerank budget of the live site (30 s, tests/conftest.py) on a busy
# machine; a page gets three times that before a wait counts as a failure.
PAGE_TIMEOUT_MS = 90_000


def open_page(browser, width: int, height: int):
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": height})
    return page
