"""Small inconsistencies, now consistent: counts are ASCII whole numbers everywhere, the page refuses
what the API refuses, a bad list page answers as docs/reliability.md says, a size refusal shows
by how much, and signed-in users who are not staff have a documented API rate of their own.
"""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from documents.parsers import size_refusal
from search.throttling import SearchThrottle
from tests.support.clients import unique_address

pytestmark = pytest.mark.django_db

NOT_NUMBERS = ["5_0", "٣", "５", "1e3", " 5", "5.5", "0x10", "9" * 30]


@pytest.fixture(autouse=True)
def _no_worker_wait(settings):
    settings.RERANK_TIMEOUT = 0.2  # no worker serves these searches; do not wait for one


@pytest.mark.parametrize("value", NOT_NUMBERS)
@pytest.mark.parametrize("name", ["k", "k_initial"])
def test_it_refuses_counts_that_are_not_ascii_whole_numbers(client, name, value):
    api = client.get("/api/v1/search", {"q": "apple", name: value})
    assert api.status_code == 400
    assert api.json()["fields"][name] == ["A valid integer is required."]

    page = client.get("/search", {"q": "apple", name: value})
    assert page.status_code == 400
    problems = BeautifulSoup(page.content, "html.parser").select("ul.problems li")
    assert [item.get_text() for item in problems] == [f"{name}: A valid integer is required."]


@pytest.mark.parametrize(("value", "message"), [("-1", "greater than or equal to 1"), ("201", "less than or equal")])
def test_it_refuses_counts_out_of_range_on_the_page_as_in_the_api(client, value, message):
    api = client.get("/api/v1/search", {"q": "apple", "k": value})
    page = client.get("/search", {"q": "apple", "k": value})

    assert (api.status_code, page.status_code) == (400, 400)
    assert message in api.json()["fields"]["k"][0]
    assert message in page.content.decode()
    assert 'value="apple"' in page.content.decode()  # the search box keeps the query


def test_it_takes_plain_whole_numbers(client):
    response = client.get("/api/v1/search", {"q": "apple", "k": "3", "k_initial": "+5"})
    assert response.status_code == 200
    assert (response.json()["k"], response.json()["k_initial"]) == (3, 5)
    assert client.get("/search", {"q": "apple", "k": "3"}).status_code == 200
    assert client.get("/", {"k": ""}).status_code == 200


@pytest.mark.parametrize("page", ["abc", "0", "99999"])
def test_it_answers_a_page_that_is_not_there_with_a_json_404(client, page):
    response = client.get("/api/v1/documents", {"page": page})
    assert response.status_code == 404
    assert response.json() == {"error": "Invalid page."}


def test_it_says_by_how_much_a_file_is_too_large():
    limit = 20 * 1024 * 1024
    assert size_refusal(limit + 1, limit) == "the file is 20,971,521 bytes; the limit is 20,971,520 bytes (20.0 MB)"
    assert size_refusal(30 * 1024 * 1024, limit) == "the file is 30.0 MB; the limit is 20.0 MB"


def test_it_throttles_signed_in_users_by_account_at_their_own_rate(plain_user, staff_api, monkeypatch):
    monkeypatch.setattr(SearchThrottle, "THROTTLE_RATES", {"anon_search": "2/min", "user_search": "4/min"})
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=plain_user).key}")
    address = unique_address()
    try:
        statuses = [reader.get("/api/v1/search", {"q": ""}, REMOTE_ADDR=address).status_code for _ in range(5)]
        # A token is not a pass: the user's own rate (4/min here), more than an anonymous client's.
        assert statuses == [200, 200, 200, 200, 429]
        # Counted by account: a fresh address does not reset it.
        assert reader.get("/api/v1/search", {"q": ""}, REMOTE_ADDR=unique_address()).status_code == 429
        # The user's requests did not spend the anonymous budget of the address.
        assert APIClient().get("/api/v1/search", {"q": ""}, REMOTE_ADDR=address).status_code == 200
        for _ in range(6):
            assert staff_api.get("/api/v1/search", {"q": ""}, REMOTE_ADDR=address).status_code == 200
    finally:
        cache.delete_many([f"throttle_user_search_user-{plain_user.pk}", f"throttle_anon_search_{address}"])
