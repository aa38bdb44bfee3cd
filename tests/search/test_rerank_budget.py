"""The rerank API's fair share: each client has a budget of pairs and characters per minute, besides
the request rate. Past it the answer is 429 with Retry-After and a JSON error; a request bigger
than the whole budget is a 413 that says so; other clients, signed-in users and staff keep theirs.

Requests within the budget are scored by the session's real worker. What the worker does with a
flood inside everyone's budget (priority of page searches) is the worker's: see docs/reliability.md.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from search.throttling import BUDGET_WINDOW_SECONDS, RerankCharge, rerank_budget_charge
from tests.support.clients import unique_address
from worker.app import app

pytestmark = pytest.mark.django_db

URL = "/api/v1/rerank"
QUERY = "apple"
PAIRS, CHARS = 10, 2_000
# The budget of a request no worker answers: it times out quickly.
NO_WORKER_SECONDS = 0.3


@pytest.fixture
def small_budget(settings):
    settings.RERANK_API_ANON_PAIRS_PER_MINUTE, settings.RERANK_API_ANON_CHARS_PER_MINUTE = PAIRS, CHARS
    settings.RERANK_API_USER_PAIRS_PER_MINUTE, settings.RERANK_API_USER_CHARS_PER_MINUTE = 2 * PAIRS, 2 * CHARS
    owners: list[str] = []
    yield owners
    # The counters of the minutes the test ran in, for every owner it used.
    minute = int(time.time() // BUDGET_WINDOW_SECONDS)
    buckets = range(minute - 2, minute + 1)
    cache.delete_many([f"rerank_budget_{kind}_{o}_{b}" for o in owners for kind in ("pairs", "chars") for b in buckets])


def post(client, documents: list[str], **meta: str):
    return client.post(URL, {"query": QUERY, "documents": documents}, content_type="application/json", **meta)


def test_it_refuses_pairs_past_the_budget_until_they_fit(client, rerank_worker, small_budget):
    address = unique_address()
    small_budget.append(address)

    first = post(client, ["Apples are fruit."] * 6, REMOTE_ADDR=address)
    refused = post(client, ["Apples are fruit."] * 6, REMOTE_ADDR=address)
    fits = post(client, ["Apples are fruit."] * 4, REMOTE_ADDR=address)

    assert first.status_code == 200, first.content
    assert len(first.json()["results"]) == 6
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    body = refused.json()
    assert body["error"].startswith(f"Rerank budget used up: a client may have {PAIRS} pairs")
    assert 1 <= int(refused["Retry-After"]) <= 120
    assert body["retry_after_seconds"] == int(refused["Retry-After"])
    # The refused request was not counted: 6 + 4 pairs fit the 10.
    assert fits.status_code == 200, fits.content
    # (Whole requests again, so the answer holds even when a minute turns during the test.)
    assert post(client, ["Apples are fruit."] * 6, REMOTE_ADDR=address).status_code == 429
    other = unique_address()
    small_budget.append(other)
    assert post(client, ["Apples are fruit."] * 6, REMOTE_ADDR=other).status_code == 200


def test_it_counts_characters_and_refuses_a_request_bigger_than_the_budget(client, rerank_worker, small_budget):
    address = unique_address()
    small_budget.append(address)
    half = "a" * (CHARS // 2 - len(QUERY))

    too_big = post(client, ["b" * CHARS], REMOTE_ADDR=address)
    assert too_big.status_code == 413
    message = " ".join(too_big.json()["fields"]["documents"])
    assert "Send fewer or shorter documents" in message and f"{CHARS:,} characters" in message

    assert post(client, [half], REMOTE_ADDR=address).status_code == 200
    assert post(client, [half], REMOTE_ADDR=address).status_code == 200
    refused = post(client, [half], REMOTE_ADDR=address)
    assert refused.status_code == 429 and "characters" in refused.json()["error"]


def test_it_gives_signed_in_users_their_own_budget_and_staff_none(
    client, rerank_worker, small_budget, plain_user, staff_api
):
    address = unique_address()
    small_budget.extend([address, f"user-{plain_user.pk}"])
    signed_in = Client()
    signed_in.force_login(plain_user)

    assert post(client, ["x"] * PAIRS, REMOTE_ADDR=address).status_code == 200
    assert post(client, ["x"] * PAIRS, REMOTE_ADDR=address).status_code == 429
    # The same address signed in is counted by account, with the users' budget (twice as large).
    assert post(signed_in, ["x"] * PAIRS, REMOTE_ADDR=address).status_code == 200
    assert post(signed_in, ["x"] * PAIRS, REMOTE_ADDR=address).status_code == 200
    assert post(signed_in, ["x"] * PAIRS, REMOTE_ADDR=address).status_code == 429
    assert isinstance(staff_api, APIClient)
    for _ in range(3):
        assert post(staff_api, ["x"] * PAIRS, REMOTE_ADDR=address).status_code == 200


def test_it_lets_concurrent_requests_of_one_client_through_only_as_far_as_the_budget(small_budget):
    address = unique_address()
    small_budget.append(address)
    factory = RequestFactory()
    decisions: list[bool] = []
    start = threading.Barrier(8)

    def ask() -> None:
        request = factory.post(URL, REMOTE_ADDR=address)
        request.user = AnonymousUser()
        start.wait()
        decisions.append(rerank_budget_charge(request, RerankCharge(pairs=4, chars=40)).allowed)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # 8 requests of 4 pairs at the same instant, 10 pairs a minute: at most 2 fit. Counting is one
    # atomic increment in Redis, refunded on refusal, so no two requests pass on the same reading.
    assert sum(decisions) <= PAIRS // 4
    request = factory.post(URL, REMOTE_ADDR=address)
    request.user = AnonymousUser()
    assert not rerank_budget_charge(request, RerankCharge(pairs=PAIRS, chars=1)).allowed


def test_it_turns_a_client_past_its_budget_away_before_reading_the_body(client, rerank_worker, small_budget):
    address = unique_address()
    small_budget.append(address)
    assert post(client, ["Apples are fruit."] * PAIRS, REMOTE_ADDR=address).status_code == 200

    # The budget is spent: the next request is answered from the counters alone. A body that is
    # not even JSON gets the 429, not the 400 that reading it would give.
    for url in (URL, "/api/v2/rerank", "/api/tei/rerank"):
        refused = client.post(url, "{not json", content_type="application/json", REMOTE_ADDR=address)
        assert refused.status_code == 429, (url, refused.content)
        assert refused.json()["error"].startswith("Rerank budget used up")
        assert 1 <= int(refused["Retry-After"]) <= 2 * BUDGET_WINDOW_SECONDS
    fresh = client.post(URL, "{not json", content_type="application/json", REMOTE_ADDR=unique_address())
    assert fresh.status_code == 400  # a client with budget left has its body read, and refused


def test_it_does_not_charge_a_request_that_got_no_scores(client, small_budget, settings):
    # A queue nobody serves: each request times out (504) after its short budget.
    settings.RERANK_QUEUE = f"rerank-nobody-{uuid.uuid4().hex[:8]}"
    settings.RERANK_TIMEOUT = NO_WORKER_SECONDS
    address = unique_address()
    small_budget.append(address)
    try:
        first = post(client, ["Apples are fruit."] * 6, REMOTE_ADDR=address)
        second = post(client, ["Apples are fruit."] * 6, REMOTE_ADDR=address)
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(settings.RERANK_QUEUE)

    assert first.status_code == 504, first.content
    # 6 + 6 pairs are past the budget of 10; the first was refunded, so the second is tried too.
    assert second.status_code == 504, second.content
