"""OpenAPI schema post-processing: every operation documents the errors it can answer with.

The views declare their successful responses; the errors follow from how each view is set up
(input, permissions, throttling, an object in the path), so they are added here in one place, all
in the JSON shape of search.api.json_exception_handler. Schema-driven fuzzing
(tests/reliability/test_api_schema_fuzz.py) holds every answer to this schema.
"""

from __future__ import annotations

from rest_framework.permissions import AllowAny

SAFE_METHODS = {"get", "head", "options"}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "what went wrong, for a person"},
        "fields": {"type": "object", "description": "400: the problems of each input field"},
        "retry_after_seconds": {"type": "integer", "description": "429: seconds until a retry is allowed"},
        "status": {
            "type": "string",
            "description": "rerank: why no scores (timeout, busy, error, unavailable, skipped)",
        },
    },
    "required": ["error"],
}
DESCRIPTIONS = {
    400: "The input is invalid; `fields` names the problems.",
    401: "No credentials, or wrong ones (send a staff token: `Authorization: Token ...`).",
    403: "The credentials are not allowed to do this (writes need staff).",
    404: "No such object, or no such page of a list.",
    415: "The body's Content-Type is not one this operation reads (or could not be made out).",
    429: (
        "Too many requests from this client (anonymous: per address; signed in: per account), or the "
        "rerank API's budget of pairs and characters per minute is used up; see the Retry-After header."
    ),
    422: "The reranker does not serve the query's language (`status`: skipped); `error` says which it serves.",
    503: "A service behind the API (the database, or the reranker) is not answering.",
    504: "The reranker did not answer within its time budget.",
}
# Operations answered by the rerank worker through search.rerank_client.
RERANK_PATHS = {"/api/v1/rerank"}


def add_error_responses(result: dict, generator: object, request: object, public: bool) -> dict:
    """Return the schema with each operation's error responses (a drf-spectacular hook)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    # drf-spectacular names a `pk` path parameter `id` in the schema.
    views = {
        (path.replace("{pk}", "{id}"), method.lower()): callback.cls
        for path, _, method, callback in generator.endpoints or []
    }
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            view = views.get((path, method))
            if method in SAFE_METHODS and view is not None and not _staff_only(getattr(view, "permission_classes", [])):
                # Anyone may read: no credentials is a valid choice too.
                security = operation.setdefault("security", [])
                if {} not in security:
                    security.append({})
            responses = operation.setdefault("responses", {})
            for code in _error_codes(path, method, operation, view):
                responses.setdefault(
                    str(code),
                    {
                        "description": DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    return result


def _error_codes(path: str, method: str, operation: dict, view: type | None) -> list[int]:
    codes = [503]
    if operation.get("parameters") or operation.get("requestBody"):
        codes.append(400)
    if operation.get("requestBody"):
        codes.append(415)  # DRF's parsers refuse a body type they do not read
    permissions = getattr(view, "permission_classes", []) if view else []
    if permissions and AllowAny not in permissions and (method not in SAFE_METHODS or _staff_only(permissions)):
        codes += [401, 403]
    if "{" in path or any(parameter.get("name") == "page" for parameter in operation.get("parameters", [])):
        codes.append(404)
    if view is not None and getattr(view, "throttle_classes", None):
        codes.append(429)
    if path in RERANK_PATHS:
        codes += [422, 504]
    return sorted(set(codes))


def _staff_only(permissions: list[type]) -> bool:
    """Return whether reading needs staff too (IsAdminUser), not only writing."""
    from rest_framework.permissions import IsAdminUser

    return IsAdminUser in permissions
