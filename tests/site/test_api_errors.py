"""Every error under /api/ is JSON in the API's shape, also with DEBUG on (no HTML, no debug page)."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[False, True], ids=["production", "debug"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert b"<html" not in response.content.lower()
    return body


@pytest.mark.parametrize("path", ["/api/v2/nothing-here", "/api/", "/api/v1/documents/abc", "/api/v1/search/"])
def test_it_answers_an_unknown_path_with_a_json_404(client, debug, path):
    body = assert_json_error(client.get(path, HTTP_ACCEPT="text/html"), 404)
    assert "Not found" in body["error"]


def test_it_still_serves_html_404_pages_outside_the_api(client, debug):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_it_answers_a_method_a_view_does_not_take_with_json_405(client, debug):
    response = client.delete("/api/v1/search?q=apple")
    assert_json_error(response, 405)
    assert "GET" in response["Allow"]


def test_it_refuses_a_body_over_the_limit_with_json_413_before_reading_it(client, debug, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    response = client.generic("POST", "/api/v1/rerank", b"x" * 5_000, content_type="application/json")
    body = assert_json_error(response, 413)
    assert "1,000 bytes" in body["error"]


def test_it_answers_an_unreadable_content_type_with_json_415(client, debug):
    response = client.generic("POST", "/api/v1/rerank", b"query=apple", content_type="text/plain")
    assert_json_error(response, 415)


def test_it_answers_a_crash_with_json_500(debug, settings):
    settings.ROOT_URLCONF = "tests.site.crash_urls"
    client = Client(raise_request_exception=False)
    body = assert_json_error(client.get("/api/v1/crash"), 500)
    assert body["error"] == "Internal server error."
    assert "this view always fails" not in body["error"]
