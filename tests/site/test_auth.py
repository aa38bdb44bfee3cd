"""Who may do what: anonymous visitors and non-staff users stay out of the admin and cannot write
through the API's session login without CSRF; forms refuse a POST without the CSRF token; the
anonymous search page is throttled like the API (429 with Retry-After).

Already covered elsewhere, not repeated here: API writes by anonymous and non-staff token users
(tests/documents/test_documents_api.py, test_upload_api.py), the admin upload page's login and CSRF
(test_admin_upload.py), the API's search throttle (tests/search/test_api.py).
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from documents.models import LIBRARY, Document
from documents.services import DocumentInput, document_create
from search.throttling import SearchPageThrottle
from tests.support.clients import unique_address

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/documents"


@pytest.fixture
def document() -> Document:
    return document_create(item=DocumentInput(title="Auth apples", body="Apples for the auth tests.")).document


def admin_urls(document: Document) -> list[str]:
    return [
        "/admin/",
        "/admin/documents/document/",
        "/admin/documents/document/add/",
        f"/admin/documents/document/{document.pk}/change/",
        f"/admin/documents/document/{document.pk}/delete/",
        "/admin/auth/user/",
    ]


@pytest.mark.parametrize("who", ["anonymous", "non-staff"])
def test_it_sends_visitors_who_are_not_staff_to_the_login_page(who, document, plain_user):
    client = Client()
    if who == "non-staff":
        client.force_login(plain_user)
    for url in admin_urls(document):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url
    before = Document.objects.count()
    posted = client.post("/admin/documents/document/add/", {"title": "x", "body": "sneaked in", "collection": LIBRARY})
    assert posted.status_code == 302
    assert Document.objects.count() == before


def test_it_refuses_a_session_write_to_the_api_without_the_csrf_token(staff_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff_user)
    before = Document.objects.count()

    refused = client.post(LIST_URL, {"title": "t", "body": "by session, no token"}, format="json")

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]
    assert Document.objects.count() == before
    token = client.get("/admin/documents/document/").cookies["csrftoken"].value
    accepted = client.post(LIST_URL, {"title": "t", "body": "by session, token"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201, accepted.content


def test_it_takes_a_staff_token_without_csrf(staff_api):
    # A token is sent deliberately in a header, never by the browser on its own: no CSRF check.
    created = staff_api.post(LIST_URL, {"title": "Token doc", "body": "Written with a staff token."}, format="json")
    assert created.status_code == 201, created.content
    assert staff_api.delete(f"{LIST_URL}/{created.json()['id']}").status_code == 204


def test_it_needs_the_csrf_token_to_log_in(staff_user):
    client = Client(enforce_csrf_checks=True)
    credentials = {"username": "editor", "password": "pw-editor", "next": "/admin/"}

    refused = client.post("/admin/login/", credentials)
    assert refused.status_code == 403
    assert "_auth_user_id" not in client.session

    token = client.get("/admin/login/").context["csrf_token"]
    accepted = client.post("/admin/login/", {**credentials, "csrfmiddlewaretoken": str(token)})
    assert accepted.status_code == 302 and accepted["Location"] == "/admin/"
    assert client.session["_auth_user_id"] == str(staff_user.pk)


def test_it_needs_the_csrf_token_to_save_a_document_in_the_admin(staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    form = {"title": "Admin doc", "body": "Saved from the admin form.", "language": "en", "collection": LIBRARY}
    form.update({"metadata": "{}", "chunks-TOTAL_FORMS": "0", "chunks-INITIAL_FORMS": "0"})

    refused = client.post("/admin/documents/document/add/", form)
    assert refused.status_code == 403
    assert not Document.objects.filter(title="Admin doc").exists()

    token = client.get("/admin/documents/document/add/").context["csrf_token"]
    accepted = client.post("/admin/documents/document/add/", {**form, "csrfmiddlewaretoken": str(token)})
    assert accepted.status_code == 302, accepted.content.decode()[-3000:]
    assert Document.objects.filter(title="Admin doc").exists()


def test_it_throttles_anonymous_searches_on_the_page(client, staff_client, monkeypatch, settings):
    settings.RERANK_TIMEOUT = 0.2  # no worker serves this test's queue; do not wait for one
    monkeypatch.setattr(SearchPageThrottle, "THROTTLE_RATES", {"anon_search_page": "2/min"})
    address = unique_address()
    try:
        for _ in range(2):
            assert client.get("/search", {"q": "apple"}, REMOTE_ADDR=address).status_code == 200

        throttled = client.get("/search", {"q": "apple"}, REMOTE_ADDR=address)

        assert throttled.status_code == 429
        assert 1 <= int(throttled["Retry-After"]) <= 60
        assert f"try again in {throttled['Retry-After']} second" in throttled.content.decode()
        assert 'value="apple"' in throttled.content.decode()  # the search box keeps the query
        assert client.get("/", REMOTE_ADDR=address).status_code == 200  # the home page is not a search
        assert client.get("/search", {"q": "apple"}, REMOTE_ADDR=unique_address()).status_code == 200
        for _ in range(3):  # staff are not anonymous
            assert staff_client.get("/search", {"q": "apple"}, REMOTE_ADDR=address).status_code == 200
    finally:
        cache.delete(f"throttle_anon_search_page_{address}")
