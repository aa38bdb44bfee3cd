"""Who a throttle counts: the socket address, whatever X-Forwarded-For claims, unless TRUSTED_PROXIES
names the proxies in front. A forged header neither buys a fresh budget nor spends someone else's.

The first test runs the site as in production (gunicorn) with a Redis of its own, and connects
from two real loopback addresses (127.0.0.1 and 127.0.0.2); the others use the test client with
the addresses a proxy would pass on.
"""

from __future__ import annotations

import http.client
import ipaddress
import urllib.parse
import uuid
from pathlib import Path

import pytest
from django.core.cache import cache

from search.throttling import SearchThrottle
from tests.support.clients import unique_address
from tests.support.own_services import OwnRedis
from tests.support.processes import free_port, start_gunicorn
from tests.support.session import child_env

# Anonymous requests per minute in the test's own site: small, so the tests go past it quickly.
RATE = 3
FORGED_REQUESTS = 20


def get(port: int, path: str, *, source: str, headers: dict[str, str] | None = None) -> int:
    """Return the status of a GET sent from the loopback address `source`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.faults
def test_it_counts_the_socket_address_whatever_x_forwarded_for_claims(
    django_db_setup, artifacts_dir: Path, tmp_path: Path
):
    own_redis = OwnRedis(tmp_path)
    own_redis.start()
    env = child_env(
        REDIS_URL=own_redis.url,
        RERANK_QUEUE=f"rerank-identity-{uuid.uuid4().hex[:8]}",  # no worker: searches fall back at once
        RERANK_TIMEOUT="0.2",
        SEARCH_ANON_THROTTLE=f"{RATE}/min",
        SEARCH_PAGE_ANON_THROTTLE=f"{RATE}/min",
        TRUSTED_PROXIES="",
    )
    port = free_port()
    site = start_gunicorn(env, artifacts_dir / "identity-web.log", port)
    api = "/api/v1/search?" + urllib.parse.urlencode({"q": ""})
    page = "/search?" + urllib.parse.urlencode({"q": "apple"})
    try:
        for path in (api, page):
            statuses = [get(port, path, source="127.0.0.1") for _ in range(RATE)]
            assert statuses == [200] * RATE, (path, statuses)
            # Bypass: a different claimed address on every request buys no fresh budget.
            forged = [
                get(port, path, source="127.0.0.1", headers={"X-Forwarded-For": f"203.0.113.{n}"})
                for n in range(FORGED_REQUESTS)
            ]
            assert forged == [429] * FORGED_REQUESTS, (path, forged)
        # Lockout: 127.0.0.1 claiming to be 127.0.0.2 spent only its own budget (already gone),
        # so the real 127.0.0.2 still has all of its own.
        for _ in range(RATE + 2):
            assert get(port, api, source="127.0.0.1", headers={"X-Forwarded-For": "127.0.0.2"}) == 429
        assert [get(port, api, source="127.0.0.2") for _ in range(RATE)] == [200] * RATE
        assert get(port, api, source="127.0.0.2") == 429
    finally:
        site.stop()
        own_redis.kill()


@pytest.fixture
def tight_api_throttle(monkeypatch):
    monkeypatch.setattr(SearchThrottle, "THROTTLE_RATES", {"anon_search": f"{RATE}/min"})
    counted: list[str] = []
    yield counted
    cache.delete_many([f"throttle_anon_search_{ident}" for ident in counted])


def search_status(client, **meta: str) -> int:
    return client.get("/api/v1/search", {"q": ""}, **meta).status_code


def spend(client, idents: list[str], ident: str, **meta: str) -> list[int]:
    """Send RATE + 1 searches; return their statuses (the last should be refused)."""
    idents.append(ident)
    return [search_status(client, **meta) for _ in range(RATE + 1)]


@pytest.mark.django_db
def test_it_reads_the_header_only_from_trusted_proxies(client, settings, tight_api_throttle):
    # Clients here have 10.x addresses (unique_address); the proxies sit elsewhere.
    third = uuid.uuid4().bytes[0]
    proxy_network, proxy = f"192.168.{third}.0/24", f"192.168.{third}.7"
    settings.TRUSTED_PROXY_COUNT, settings.TRUSTED_PROXY_NETWORKS = 0, [proxy_network]
    first, second = unique_address(), unique_address()

    # Behind the proxy each client has a budget of its own, under its own address...
    behind_proxy = spend(client, tight_api_throttle, first, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=first)
    assert behind_proxy == [200] * RATE + [429]
    assert search_status(client, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=second) == 200
    tight_api_throttle.append(second)
    # ...and what a client wrote into the header before the proxy appended its address is ignored.
    assert search_status(client, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"{unique_address()}, {first}") == 429
    # A peer that is not one of the proxies is counted by its socket address, header or not.
    stranger = unique_address()
    statuses = [
        search_status(client, REMOTE_ADDR=stranger, HTTP_X_FORWARDED_FOR=unique_address()) for _ in range(RATE + 1)
    ]
    tight_api_throttle.append(stranger)
    assert statuses == [200] * RATE + [429]


@pytest.mark.django_db
def test_it_takes_the_address_a_counted_proxy_appended(client, settings, tight_api_throttle):
    settings.TRUSTED_PROXY_COUNT, settings.TRUSTED_PROXY_NETWORKS = 1, []
    real = unique_address()
    forged = [f"{unique_address()}, {real}" for _ in range(RATE + 1)]
    tight_api_throttle.append(real)
    statuses = [search_status(client, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=chain) for chain in forged]
    assert statuses == [200] * RATE + [429]


@pytest.mark.django_db
def test_it_counts_an_ipv6_client_by_its_64_bit_prefix(client, tight_api_throttle):
    prefix = f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"
    tight_api_throttle.append(str(ipaddress.ip_network(f"{prefix}::/64")))
    statuses = [search_status(client, REMOTE_ADDR=f"{prefix}::{n + 1:x}") for n in range(RATE + 1)]
    assert statuses == [200] * RATE + [429]  # new addresses of the same /64 share one budget
    other = f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"
    tight_api_throttle.append(str(ipaddress.ip_network(f"{other}::/64")))
    assert search_status(client, REMOTE_ADDR=f"{other}::1") == 200
