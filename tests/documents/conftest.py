"""Fixtures for the document tests: users, logged-in clients, a collection of their own."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

# Tests that count documents use this collection; the session's sample library stays apart.
TEST_COLLECTION = "test-ingest"


@pytest.fixture
def collection() -> str:
    return TEST_COLLECTION


@pytest.fixture
def staff_user(db) -> User:
    return User.objects.create_user("editor", "editor@example.com", "pw-editor", is_staff=True, is_superuser=True)


@pytest.fixture
def plain_user(db) -> User:
    return User.objects.create_user("reader", "reader@example.com", "pw-reader")


@pytest.fixture
def staff_client(staff_user: User) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def staff_api(staff_user: User) -> APIClient:
    """An API client that authenticates with a real staff token (no session)."""
    token = Token.objects.create(user=staff_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client
