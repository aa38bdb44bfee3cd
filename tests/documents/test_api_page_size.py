"""API lists honour `page_size` up to MAX_PAGE_SIZE (issue 26 §4): it used to be ignored, and
echoed in the `next` link all the same."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from rest_framework.test import APIClient

from documents.models import LIBRARY, Document
from searchsite.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from tests.support.clients import unique_address

pytestmark = pytest.mark.django_db


def test_it_answers_the_page_size_asked_for(client):
    first = client.get("/api/v1/documents", {"page_size": 2}).json()
    second = client.get(first["next"]).json()

    assert len(first["results"]) == 2 and len(second["results"]) == 2
    assert parse_qs(urlsplit(first["next"]).query) == {"page": ["2"], "page_size": ["2"]}
    assert {row["id"] for row in first["results"]}.isdisjoint(row["id"] for row in second["results"])


def test_it_cuts_a_larger_page_size_to_the_maximum(client):
    library = Document.objects.filter(collection=LIBRARY).count()
    assert library > MAX_PAGE_SIZE  # the sample library: 226 documents

    body = client.get("/api/v1/documents", {"page_size": "9" * 30}).json()

    assert len(body["results"]) == MAX_PAGE_SIZE


@pytest.mark.parametrize("size", ["0", "-3", "abc", "", "\x00"])
def test_it_uses_the_default_for_a_page_size_that_is_not_one(client, size):
    response = client.get("/api/v1/documents", {"page_size": size})

    assert response.status_code == 200
    assert len(response.json()["results"]) == DEFAULT_PAGE_SIZE


def test_the_judgments_list_honours_it_too(staff_user, documents_judged):
    api = APIClient(REMOTE_ADDR=unique_address())
    api.force_authenticate(staff_user)

    assert len(api.get("/api/v1/judgments", {"page_size": 1}).json()["results"]) == 1


@pytest.fixture
def documents_judged(staff_user):
    from evaluation.models import Judgment

    for document in Document.objects.filter(collection=LIBRARY).order_by("id")[:2]:
        Judgment.objects.create(
            query="apple",
            language="en",
            document=document,
            document_hash=document.content_hash,
            grade=1,
            user=staff_user,
        )
