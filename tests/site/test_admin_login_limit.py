"""The admin login limits wrong passwords, per client and per account (searchsite.admin_login).

Past the limit a login POST answers 429 with Retry-After, the right password included, until the
window has passed; other clients keep their own count, and a forged X-Forwarded-For changes
nothing. Windows here are a few seconds long (settings), so the test can wait one out.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import Client

from tests.support.clients import unique_address

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/"
# Long enough for the attempts of one test (hashing is fast here, see login_limits), short to wait out.
WINDOW_SECONDS = 5
# Wrong passwords one client sends at once (the probe's 30), three times the default limit.
CONCURRENT_ATTEMPTS = 30


@pytest.fixture
def login_limits(settings):
    """Small limits; the counters this test leaves expire with their window, in seconds.

    Requested before the users, so their passwords are hashed with a fast hasher: a login with
    the default one takes most of a second on a busy machine, which would outlast the window.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.ADMIN_LOGIN_MAX_FAILURES = 3
    settings.ADMIN_LOGIN_MAX_ACCOUNT_FAILURES = 5
    settings.ADMIN_LOGIN_WINDOW_SECONDS = WINDOW_SECONDS


def attempt(address: str, password: str, *, username: str = "editor", **headers: str) -> tuple[object, Client]:
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN_URL, {"username": username, "password": password, "next": "/admin/"}, **headers)
    return response, client


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_it_refuses_the_right_password_after_too_many_wrong_ones(login_limits, staff_user):
    address = unique_address()
    for n in range(3):
        wrong, _ = attempt(address, "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")  # forged: ignored
        assert wrong.status_code == 200  # the form again, with its error

    refused, client = attempt(address, "pw-editor")

    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= WINDOW_SECONDS
    assert "Too many failed logins" in refused.content.decode()
    assert not signed_in(client)
    # Another client is not locked out by this one.
    accepted, other = attempt(unique_address(), "pw-editor")
    assert accepted.status_code == 302 and signed_in(other)
    # Once the window has passed, the right password works again from the locked address.
    time.sleep(WINDOW_SECONDS + 0.5)
    accepted, client = attempt(address, "pw-editor")
    assert accepted.status_code == 302 and signed_in(client)


def test_it_limits_guesses_at_one_account_from_many_addresses(login_limits, staff_user, plain_user):
    for _ in range(5):
        assert attempt(unique_address(), "wrong")[0].status_code == 200

    refused, client = attempt(unique_address(), "pw-editor")
    assert refused.status_code == 429 and not signed_in(client)
    # Other accounts are not affected (the plain user is refused as not staff, not as locked).
    other, _ = attempt(unique_address(), "pw-reader", username="reader")
    assert other.status_code == 200
    time.sleep(WINDOW_SECONDS + 0.5)
    assert attempt(unique_address(), "pw-editor")[0].status_code == 302


def test_it_does_not_count_a_successful_login(login_limits, staff_user):
    address = unique_address()
    for _ in range(6):
        accepted, _ = attempt(address, "pw-editor")
        assert accepted.status_code == 302


def test_it_checks_at_most_the_limit_of_concurrent_wrong_passwords(settings):
    """30 wrong passwords from one client at once, limit 10: each attempt is reserved on the
    counters before its password is checked, so no more than 10 are checked (before: 28)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.ADMIN_LOGIN_MAX_FAILURES = 10
    settings.ADMIN_LOGIN_MAX_ACCOUNT_FAILURES = 1000  # the client's limit is the one reached
    settings.ADMIN_LOGIN_WINDOW_SECONDS = 300  # outlasts the test on any machine; its keys are its own
    address, username = unique_address(), f"guess-{uuid.uuid4().hex[:8]}"
    start = threading.Barrier(CONCURRENT_ATTEMPTS)

    def one(_: int) -> int:
        start.wait()
        try:
            return attempt(address, "wrong", username=username)[0].status_code
        finally:
            connections.close_all()  # this thread's own database connection

    with ThreadPoolExecutor(CONCURRENT_ATTEMPTS) as pool:
        statuses = Counter(pool.map(one, range(CONCURRENT_ATTEMPTS)))

    assert set(statuses) <= {200, 429}, statuses  # 200: the form again, its password checked and wrong
    assert statuses[200] == 10, statuses
    assert attempt(address, "wrong", username=username)[0].status_code == 429
