"""The OpenAPI schema as an app developer reads it (issue 26 §4): every operation has a summary,
and an operation open to anonymous clients says so and asks for no credentials (no padlock in
Swagger UI), while the staff operations keep theirs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

ANONYMOUS = {
    ("get", "/api/v1/search"),
    ("post", "/api/v1/rerank"),
    ("post", "/api/v2/rerank"),
    ("post", "/api/tei/rerank"),
    ("get", "/api/tei/info"),
    ("get", "/api/v1/status"),
    ("get", "/api/v1/documents"),
    ("get", "/api/v1/documents/{id}"),
    ("post", "/api/v1/judgments"),
}


@pytest.fixture(scope="module")
def operations(django_db_setup, django_db_blocker) -> dict[tuple[str, str], dict]:
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    return {(method, path): operation for path, ops in schema["paths"].items() for method, operation in ops.items()}


def test_every_operation_has_a_summary(operations):
    missing = sorted(key for key, operation in operations.items() if not operation.get("summary"))

    assert not missing


def test_anonymous_operations_ask_for_no_credentials_and_say_so(operations):
    for key in ANONYMOUS:
        operation = operations[key]
        assert operation["security"] == [{}], key
        assert "Anonymous access: allowed" in operation["description"], key


def test_staff_operations_keep_their_credentials(operations):
    for key, operation in operations.items():
        if key not in ANONYMOUS:
            assert {} not in operation["security"], key
            assert {"tokenAuth": []} in operation["security"], key


@pytest.mark.parametrize("path", ["/api/v1/documents", "/api/v1/search", "/api/v1/rerank"])
def test_an_anonymous_path_answers_405_for_a_method_it_does_not_take(client, path):
    # Anonymous clients are told the method is wrong, not asked for credentials they need not have.
    response = client.generic("TRACE", path)

    assert response.status_code == 405
    assert "Allow" in response
