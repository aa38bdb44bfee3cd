"""Fixtures for the reliability tests: an anonymous address of each test's own, so no throttle
history is shared between tests (users and clients come from tests/conftest.py)."""

from __future__ import annotations

from tests.support.clients import _own_client_address  # noqa: F401 - autouse fixture
