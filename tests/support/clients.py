"""Anonymous test clients with addresses of their own, so throttles never mix their histories."""

from __future__ import annotations

import uuid

import pytest


def unique_address() -> str:
    """Return a client address no other test (or concurrent run) throttles."""
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2]}"


@pytest.fixture(autouse=True)
def _own_client_address(client):
    """Each test is an anonymous client of its own: no throttle history shared with others.

    Autouse wherever a test module or conftest imports it.
    """
    client.defaults["REMOTE_ADDR"] = unique_address()
