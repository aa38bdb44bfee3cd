"""The OpenAPI schema lists each operation's error answers, all in the one JSON error shape."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

ERROR_REF = {"$ref": "#/components/schemas/Error"}
EVERY_OPERATION = {"405", "500", "503"}
WITH_A_BODY = {"400", "413", "415"}
RERANK = {"413", "422", "429", "503", "504"}


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/v1/schema", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_it_lists_the_errors_every_operation_can_answer(schema):
    seen = 0
    for path, method, operation in operations(schema):
        seen += 1
        responses = operation["responses"]
        assert responses.keys() >= EVERY_OPERATION, (path, method)
        if "requestBody" in operation:
            assert responses.keys() >= WITH_A_BODY, (path, method)
        for code, response in responses.items():
            if int(code) >= 400:
                assert response["content"]["application/json"]["schema"] == ERROR_REF, (path, method, code)
                assert response["description"]
    assert seen >= 8


@pytest.mark.parametrize("path", ["/api/v1/rerank", "/api/v2/rerank", "/api/tei/rerank"])
def test_it_lists_the_rerank_refusals(schema, path):
    assert schema["paths"][path]["post"]["responses"].keys() >= RERANK


def test_it_documents_the_error_shape_once(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert {"error", "message", "fields", "retry_after_seconds", "status", "error_type"} == error["properties"].keys()
