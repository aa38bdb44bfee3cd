"""The tests that tests/site/test_process_lifecycle.py runs in a `make test` of its own, on a
database of its own. The suite never collects them (the file name does not start with test_)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User


def test_holds_the_live_site_until_stopped(live_site: str) -> None:
    """Start the live site (a web server and a rerank worker), say so, then wait to be stopped."""
    Path(os.environ["LIFECYCLE_READY_FILE"]).write_text(live_site)
    time.sleep(900)  # the outer test stops the run long before


@pytest.mark.django_db
def test_the_test_database_answers() -> None:
    assert User.objects.count() == 0
