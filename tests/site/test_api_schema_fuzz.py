"""Schema-driven fuzzing of the REST API (schemathesis), in-process against the WSGI app: every
operation of /api/v1/schema with generated input, as an anonymous client and with a staff token.
No server errors, and every answer matches the schema (status code, content type, body).

The app runs inside the test's transaction, so what staff requests write is undone afterwards.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from django.core.signals import request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from searchsite.api_schema import RERANK_PATHS
from tests.support.clients import lift_limits
from tests.support.fuzz_counts import record_count

# Generated cases per API operation, for each kind of client.
MAX_EXAMPLES = 40
RERANK_SECONDS = 1.0
# The rerank API answers 503/504 by design when the reranker cannot (documented in the schema);
# every other 5xx anywhere is a failure.
RERANK_FALLBACK_STATUSES = {503, 504}
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def api_schema(db, settings, monkeypatch, rerank_worker):
    from searchsite.wsgi import application

    settings.RERANK_TIMEOUT = RERANK_SECONDS
    lift_limits(settings, monkeypatch)
    # As Django's own test client does: a request must not close the test's connection (it
    # holds the transaction that undoes the test's writes).
    request_started.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/v1/schema?format=json", application)
    request_started.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def staff_token(staff_user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=staff_user).key


CASES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_cases(pytestconfig):
    """Print (and record in test-artifacts/fuzz-counts.json) how many cases were checked."""
    yield
    total = sum(CASES.values())
    with pytestconfig.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\n[fuzz] schemathesis API calls: {total} ({dict(CASES)})")
    record_count("schemathesis API calls", total)


def no_server_error(ctx, response, case) -> None:
    """Fail on any 5xx but the rerank API's documented fallbacks (counts every case it sees)."""
    CASES[case.operation.label] += 1
    if response.status_code < 500:
        return
    if case.operation.path in RERANK_PATHS and response.status_code in RERANK_FALLBACK_STATUSES:
        return
    raise AssertionError(f"{response.status_code} from {case.operation.label}: {response.text[:500]}")


# Left out: how strictly input is validated, which the schema cannot say exactly. The API is
# lenient where DRF is (`0`/`1` as booleans, an empty optional parameter ignored, a bad `page` read
# as the first), and it refuses input the schema allows when a rule is about meaning (a body of
# whitespace has no text). Both answer 200 or a documented 400, which the checks kept here hold.
INPUT_STRICTNESS_CHECKS = [negative_data_rejection, positive_data_acceptance]


def validate(case, **kwargs) -> None:
    case.call_and_validate(
        excluded_checks=[not_a_server_error, *INPUT_STRICTNESS_CHECKS], additional_checks=[no_server_error], **kwargs
    )


@schema.parametrize()
@FUZZ
def test_it_answers_anonymous_clients_as_the_schema_says(case):
    validate(case)


@schema.parametrize()
@FUZZ
def test_it_answers_staff_as_the_schema_says(case, staff_token):
    validate(case, headers={"Authorization": f"Token {staff_token}"})
