"""Fixtures for the reliability tests: users and clients (from the document tests), and an
anonymous address of each test's own so no throttle history is shared between tests."""

from __future__ import annotations

from tests.documents.conftest import collection, plain_user, staff_api, staff_client, staff_user  # noqa: F401 - fixtures
from tests.support.clients import _own_client_address  # noqa: F401 - autouse fixture
