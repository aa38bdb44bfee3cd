"""Shared fixtures: the real PostgreSQL test database with the sample library, a real Celery
rerank worker running a real (small, locally built) CrossEncoder, a rerank queue of a test's own,
the live site, users with
logged-in clients, and an anonymous client address of each test's own. Helpers that tests import
live in tests/support/, never here."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from common.processes import interrupt_on_stop_signals
from tests.support.clients import unique_address
from tests.support.database_claim import DatabaseInUse, claim_test_database
from tests.support.processes import ROOT, Started, free_port, start_web, start_worker
from tests.support.session import (
    ARTIFACTS,
    MODELS,
    SESSION_QUEUE,
    TEST_RERANK_TIMEOUT,
    child_env,
    wait_for_worker,
)
from worker.app import app

# The site's database name, before pytest-django switches the connection to the test database.
SITE_DATABASE_NAME = settings.DATABASES["default"]["NAME"]

# Tests that count documents use this collection; the session's sample library stays apart.
TEST_COLLECTION = "test-ingest"


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM and SIGHUP (a timeout, a closed terminal, devstack stopped) end the session in order,
    # as Ctrl-C does: the fixtures stop what they started. What they miss dies with this process.
    interrupt_on_stop_signals()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request, django_db_modify_db_settings_parallel_suffix):
    """Claim the test database for this run before pytest-django creates it, ending connections an
    interrupted run left to it (tests/support/database_claim.py)."""
    from django.db import connection

    name = connection.creation._get_test_db_name()
    try:
        claim, ended = claim_test_database(name)
    except DatabaseInUse as error:
        pytest.exit(str(error), returncode=3)
    if ended:  # on the terminal, past the capture of fixture output
        plugins = request.config.pluginmanager
        with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
            plugins.get_plugin("terminalreporter").write_line(
                f"[tests] ended {ended} connection(s) that an interrupted test run left to {name}"
            )
    yield
    claim.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session", autouse=True)
def _session_queue():
    settings.RERANK_QUEUE = SESSION_QUEUE
    settings.RERANK_TIMEOUT = TEST_RERANK_TIMEOUT
    yield SESSION_QUEUE


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """Return a small real CrossEncoder directory (built once, offline, in a subprocess)."""
    target = MODELS / "tiny-cross-encoder"
    MODELS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "tests.support.build_tiny_model", str(target)], cwd=ROOT, check=True)
    return target


@pytest.fixture(scope="session")
def rerank_worker(tiny_model_dir: Path, artifacts_dir: Path, django_db_setup) -> Started:
    """A real Celery worker process serving this session's queue with the tiny CrossEncoder."""
    worker = start_worker(
        child_env(),
        artifacts_dir / "worker.log",
        queue=SESSION_QUEUE,
        model=str(tiny_model_dir),
        extra_env={"RERANKER_FALLBACK_MODEL": ""},
    )
    try:
        status = wait_for_worker(worker)
        assert status.get("ready"), status
        yield worker
    finally:  # also when the run is interrupted while the worker loads
        worker.stop()


@pytest.fixture
def own_queue(settings):
    """Point this test's searches at a queue of its own, which no worker serves unless the test
    starts one on it; purge what is left in it afterwards."""
    settings.RERANK_QUEUE = f"rerank-fault-{uuid.uuid4().hex[:8]}"
    yield settings.RERANK_QUEUE
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.RERANK_QUEUE)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, django_db_keepdb):
    """Create the test database once and load the sample library into it (committed).

    pytest-django creates it only when some collected test is marked `django_db`; a session of
    tests that use it only through committed fixtures (the live site, a worker) creates it here.
    """
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    created = None
    with django_db_blocker.unblock():
        if connection.settings_dict["NAME"] == SITE_DATABASE_NAME:  # not switched to the test database
            created = setup_databases(verbosity=0, interactive=False, aliases={"default"}, keepdb=django_db_keepdb)
        call_command("load_sample_library", "--if-empty")
    yield
    if created is not None and not django_db_keepdb:
        with django_db_blocker.unblock():
            teardown_databases(created, verbosity=0)


@pytest.fixture(scope="session")
def live_site(rerank_worker: Started, artifacts_dir: Path, django_db_setup) -> str:
    """Return the base URL of the whole site running as real processes on the test database."""
    port = free_port()
    web = start_web(
        child_env(RERANK_QUEUE=SESSION_QUEUE, RERANK_TIMEOUT=str(TEST_RERANK_TIMEOUT)), artifacts_dir / "web.log", port
    )
    yield f"http://127.0.0.1:{port}"
    web.stop()


@pytest.fixture(autouse=True)
def _own_client_address(client):
    """Each test's `client` is an anonymous client of its own: no throttle history shared with others."""
    client.defaults["REMOTE_ADDR"] = unique_address()


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
