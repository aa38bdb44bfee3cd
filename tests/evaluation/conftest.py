"""Fixtures for judging and evaluation: staff and plain users, their clients, library documents."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from documents.models import LIBRARY, Document
from evaluation.judgments import JudgmentThrottle
from tests.support.clients import unique_address


@pytest.fixture
def staff_user(db) -> User:
    return User.objects.create_user("judge-staff", "staff@example.com", "pw-staff", is_staff=True, is_superuser=True)


@pytest.fixture
def plain_user(db) -> User:
    return User.objects.create_user("judge-reader", "reader@example.com", "pw-reader")


@pytest.fixture
def staff_client(staff_user: User) -> Client:
    client = Client(REMOTE_ADDR=unique_address())
    client.force_login(staff_user)
    return client


@pytest.fixture
def staff_api(staff_user: User) -> APIClient:
    api = APIClient(REMOTE_ADDR=unique_address())
    api.force_authenticate(staff_user)
    return api


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient(REMOTE_ADDR=unique_address())


@pytest.fixture
def documents(db) -> list[Document]:
    """Return four documents of the sample library (loaded once per session)."""
    found = list(Document.objects.filter(collection=LIBRARY).order_by("id")[:4])
    assert len(found) == 4
    return found


@pytest.fixture
def judging_rate(monkeypatch):
    """Return a setter of the anonymous judging rate, e.g. "2/min"."""

    def set_rate(rate: str) -> None:
        monkeypatch.setattr(JudgmentThrottle, "THROTTLE_RATES", {"anon_judgment": rate, "user_judgment": rate})

    return set_rate
