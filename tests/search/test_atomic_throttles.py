"""Request throttles are atomic: however many requests of one client are in flight, at most the
rate passes (search.throttling, common.counters).

The site runs as a real threaded web process on the session's Redis and test database; many
threads send one anonymous client's requests at once, released together by a barrier. Before the
throttles counted in one Redis script, each request read the client's history and wrote it back
later, so concurrent requests all passed on the same reading (120 of 120 through a limit of 60).
"""

from __future__ import annotations

import threading
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.cache import cache

from tests.support.own_services import http
from tests.support.processes import start_site
from tests.support.session import child_env

# The database mark makes pytest-django set up the test database the site process uses.
pytestmark = pytest.mark.django_db

# Requests per minute allowed to one anonymous client in this test's site.
RATE = 10
# Requests sent at once, four times the rate.
IN_FLIGHT = 40


@pytest.fixture
def throttled_site(django_db_setup, artifacts_dir: Path):
    env = child_env(
        SEARCH_ANON_THROTTLE=f"{RATE}/min",
        DOCUMENT_PAGE_ANON_THROTTLE=f"{RATE}/min",
        RERANK_CACHE_SECONDS="0",
    )
    site, base = start_site(env, artifacts_dir / "web-atomic-throttles.log")
    forget_anonymous_counts()
    yield base
    site.stop()


def forget_anonymous_counts() -> None:
    """Delete the anonymous search and document-page windows this Redis holds: earlier tests' sites
    (other rates, the same client address) counted their requests in the same keys, which would
    take part of this test's rate and let fewer than RATE pass."""
    client = cache._cache.get_client(write=True)
    for scope in ("anon_search", "anon_document_page"):
        for key in client.scan_iter(match=f"*throttle_{scope}_*"):
            client.delete(key)


def statuses_at_once(url: str) -> Counter:
    """Return how many of IN_FLIGHT concurrent GETs of `url` got each status."""
    start = threading.Barrier(IN_FLIGHT)

    def one(_: int) -> int:
        start.wait()
        return http(url).status

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        return Counter(pool.map(one, range(IN_FLIGHT)))


@pytest.mark.parametrize(
    ("path", "passed_status"),
    [
        # Nothing matches: the search answers without the reranker.
        ("/api/v1/search?" + urllib.parse.urlencode({"q": "zzqxv-nothing-matches"}), 200),
        # No such document: counted by the page's throttle before the database is asked.
        ("/documents/987654321", 404),
    ],
)
def test_it_lets_at_most_the_rate_through_however_many_requests_are_in_flight(
    throttled_site: str, path: str, passed_status: int
):
    counts = statuses_at_once(throttled_site + path)

    assert set(counts) <= {passed_status, 429}, counts
    assert counts[passed_status] == RATE, counts
    # Requests that arrive one by one are counted too: the client is at its rate now.
    assert counts[passed_status] + counts[429] == IN_FLIGHT
    assert http(throttled_site + path).status == 429
