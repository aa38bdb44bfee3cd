"""Fixtures for the search tests: a rerank queue of the test's own, which no worker serves unless
the test starts one on it."""

from __future__ import annotations

import uuid

import pytest

from worker.app import app


@pytest.fixture
def own_queue(settings):
    """Point this test's searches at a queue of its own; purge what is left in it afterwards."""
    settings.RERANK_QUEUE = f"rerank-fault-{uuid.uuid4().hex[:8]}"
    yield settings.RERANK_QUEUE
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.RERANK_QUEUE)
