"""Fixtures for the reliability tests: users and clients (from the document tests), and an
anonymous address of each test's own so no throttle history is shared between tests."""

from __future__ import annotations

import uuid

import pytest

from tests.documents.conftest import plain_user, staff_api, staff_client, staff_user  # noqa: F401 - fixtures


def unique_address() -> str:
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2]}"


@pytest.fixture(autouse=True)
def _own_client_address(client):
    client.defaults["REMOTE_ADDR"] = unique_address()
