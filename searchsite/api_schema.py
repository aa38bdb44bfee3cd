"""The API schema, served (SchemaApi: throttled, kept rendered, what serves read from the heartbeat),
and its post-processing: every operation documents the errors it can answer with.

The views declare their successful responses; the errors follow from how each view is set up
(input, permissions, throttling, an object in the path), so they are added here in one place, all
in the JSON shape of search.api.json_exception_handler. Schema-driven fuzzing
(tests/site/test_api_schema_fuzz.py) holds every answer to this schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpResponse
from django.utils import translation
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request

from search.throttling import SchemaThrottle

if TYPE_CHECKING:
    from worker.protocol import WorkerStatus

SAFE_METHODS = {"get", "head", "options"}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "what went wrong, for a person"},
        "message": {
            "type": "string",
            "description": "Cohere-shaped rerank APIs (/api/v1/rerank, /api/v2/rerank, /api/tei/rerank): the same "
            "as `error`, or the first field problem, where Cohere's clients read it",
        },
        "fields": {"type": "object", "description": "400, 413, 422: the problems of each input field"},
        "retry_after_seconds": {"type": "integer", "description": "429: seconds until a retry is allowed"},
        "status": {
            "type": "string",
            "description": "rerank: why no scores (too_large, language, throttled, busy, unavailable, error, timeout)",
        },
        "error_type": {
            "type": "string",
            "enum": ["validation", "overloaded", "unhealthy", "backend", "empty"],
            "description": "TEI's error category (only under /api/tei/)",
        },
    },
    "required": ["error"],
}
DESCRIPTIONS = {
    400: "The input is invalid; `fields` names the problems.",
    401: "No credentials, or wrong ones (send a staff token: `Authorization: Token ...`).",
    403: "The credentials are not allowed to do this (writes need staff).",
    404: "No such object, or no such page of a list (any unknown path under /api/ answers this too).",
    405: "This path does not take that method; the Allow header lists those it takes.",
    413: "The body is larger than the site reads (DATA_UPLOAD_MAX_MEMORY_SIZE), or, for rerank, more "
    "documents or characters than one call may have scored; the message names the limit.",
    415: "The body's Content-Type is not one this operation reads (or could not be made out).",
    422: "Rerank: the serving model does not rerank queries in this language (RERANKER_LANGUAGES: en or zh, told "
    "by the query's script; other languages read as en and are scored); TEI: "
    "input that is not TEI's shape.",
    429: (
        "Too many requests from this client (anonymous: per address; signed in: per account), or the "
        "rerank API's budget of pairs and characters per minute is used up; see the Retry-After header."
    ),
    500: "A bug: the answer says no more than that (the details are in the server's log).",
    503: "A service behind the API (the database, or the reranker) is not answering.",
    504: "The reranker did not answer within its time budget.",
}
# Operations answered by the rerank worker through search.reranking.
RERANK_PATHS = {"/api/v1/rerank", "/api/v2/rerank", "/api/tei/rerank"}


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
            permissions = getattr(view, "permission_classes", []) if view is not None else []
            anonymous_writes = any(method in getattr(p, "anonymous_methods", ()) for p in permissions)
            if view is not None and (anonymous_writes or (method in SAFE_METHODS and not _staff_only(permissions))):
                # Anyone may read: no credentials is a valid choice too.
                security = operation.setdefault("security", [])
                if {} not in security:
                    security.append({})
            responses = operation.setdefault("responses", {})
            for code in _error_codes(path, method, operation, view):
                responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
            for code, response in responses.items():
                # An error a view describes in its own words still has the one error shape.
                if code.isdigit() and int(code) >= 400 and "content" not in response:
                    response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return result


def _error_codes(path: str, method: str, operation: dict, view: type | None) -> list[int]:
    # Any operation: a method the path does not take, a bug, a service down.
    codes = [405, 500, 503]
    if operation.get("parameters") or operation.get("requestBody"):
        codes.append(400)
    if operation.get("requestBody"):
        codes.append(415)  # DRF's parsers refuse a body type they do not read
        codes.append(413)  # searchsite.middleware refuses a body over the limit before reading it
    permissions = getattr(view, "permission_classes", []) if view else []
    if permissions and AllowAny not in permissions and (method not in SAFE_METHODS or _staff_only(permissions)):
        codes += [401, 403]
    if "{" in path or any(parameter.get("name") == "page" for parameter in operation.get("parameters", [])):
        codes.append(404)
    if view is not None and getattr(view, "throttle_classes", None):
        codes.append(429)
    if path in RERANK_PATHS:
        codes += [413, 422, 504]
    return sorted(set(codes))


def _staff_only(permissions: list[type]) -> bool:
    """Return whether reading needs staff too (IsAdminUser, or a permission that says so), not only writing."""
    from rest_framework.permissions import IsAdminUser

    return any(p is IsAdminUser or getattr(p, "staff_only_reads", False) for p in permissions)


class SchemaApi(SpectacularAPIView):
    """GET /api/v1/schema: throttled (SchemaThrottle), rendered once per process for each format,
    version, language and serving sentence; what serves is read from the worker's heartbeat
    (Redis: one read per request), never asked of the worker with a task."""

    throttle_classes = [SchemaThrottle]

    def _get_schema_response(self, request: Request) -> HttpResponse:
        version = self.api_version or request.version or self._get_version_parameter(request)
        sentence = serving_sentence(serving_status())
        renderer = request.accepted_renderer
        key = (renderer.media_type, version, translation.get_language(), sentence)
        body = _RENDERED.get(key)
        if body is None:
            generator = self.generator_class(urlconf=self.urlconf, api_version=version, patterns=self.patterns)
            schema = generator.get_schema(request=request, public=self.serve_public)
            info = schema.setdefault("info", {})
            info["description"] = f"{info.get('description', '')}\n\n{sentence}"
            body = renderer.render(schema, renderer.media_type, self.get_renderer_context())
            if len(_RENDERED) >= RENDERED_KEPT:
                _RENDERED.clear()
            _RENDERED[key] = body
        charset = f"; charset={renderer.charset}" if renderer.charset else ""
        response = HttpResponse(body, content_type=renderer.media_type + charset)
        response["Content-Disposition"] = f'inline; filename="{self._get_filename(request, version)}"'
        return response


# Rendered schemas kept per process: a few formats and serving sentences (a new model, a worker
# gone); past this many, all are dropped and built again as asked.
RENDERED_KEPT = 16
_RENDERED: dict[tuple, bytes] = {}


def serving_status() -> WorkerStatus:
    """Return what the worker serves, from its last heartbeat (search.worker_client; Redis: one read)."""
    from search.worker_client import worker_heartbeat
    from worker.protocol import HEARTBEAT_FRESH_SECONDS, WorkerStatus

    beat = worker_heartbeat()
    if beat is None:
        return WorkerStatus(ready=False, problem=f"no rerank worker has reported in for {HEARTBEAT_FRESH_SECONDS:g} s")
    return beat


def serving_sentence(status: WorkerStatus) -> str:
    """Return one sentence on what reranks now, from the worker's status or heartbeat (a
    worker.protocol.WorkerStatus, from search.worker_client)."""
    model = status.model
    if not status.ready or model is None:
        problem = status.problem or "no worker answered"
        return f"**Reranking now:** nothing ({problem}); results keep the full-text order."
    sentence = (
        f"**Reranking now:** `{model.model}`, a {model.kind} on {model.device} ({model.dtype}, "
        f"{model.max_length} tokens per pair)"
    )
    if model.languages:
        sentence += f", for queries in {', '.join(model.languages)}"
    if model.is_fallback:
        sentence += f"; the configured `{model.requested}` could not be loaded, so this is the fallback"
    return sentence + ". GET /api/v1/status says the same as JSON."


# One line per operation, as Swagger lists them. A new operation needs its line here:
# tests/search/test_api_schema_conventions.py fails on an operation without one.
SUMMARIES = {
    ("get", "/api/v1/search"): "Search: the full-text and the reranked order",
    ("post", "/api/v1/rerank"): "Rerank texts (Cohere v1 shape)",
    ("post", "/api/v2/rerank"): "Rerank texts (Cohere v2 shape)",
    ("post", "/api/tei/rerank"): "Rerank texts (TEI shape)",
    ("get", "/api/tei/info"): "What model serves (TEI /info shape)",
    ("get", "/api/v1/status"): "What model serves, or why none does",
    ("get", "/api/v1/documents"): "List the library's documents",
    ("post", "/api/v1/documents"): "Create a document (staff)",
    ("get", "/api/v1/documents/{id}"): "Read one document",
    ("put", "/api/v1/documents/{id}"): "Replace a document (staff)",
    ("patch", "/api/v1/documents/{id}"): "Change a document (staff)",
    ("delete", "/api/v1/documents/{id}"): "Delete a document (staff)",
    ("post", "/api/v1/documents/upload"): "Upload files into the library (staff)",
    ("get", "/api/v1/judgments"): "List and filter judgments (staff)",
    ("post", "/api/v1/judgments"): "Judge a result (anyone while JUDGMENTS_PUBLIC is on)",
    ("get", "/api/v1/judgments/{id}"): "Read one judgment (staff)",
    ("delete", "/api/v1/judgments/{id}"): "Delete a judgment (staff)",
}
ANONYMOUS_NOTE = (
    "**Anonymous access: allowed**, throttled per client address. A token (`Authorization: Token ...`) "
    "or a session is accepted too: signed-in users get larger limits, staff none."
)


def add_summaries_and_access(result: dict, generator: object, request: object, public: bool) -> dict:
    """Return the schema with a summary on every operation, and, on each operation anonymous
    clients may call, security `[{}]` (no padlock in Swagger UI) and a sentence saying so (a
    drf-spectacular hook, after add_error_responses, which marks those operations with `{}`)."""
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if (method, path) in SUMMARIES:
                operation["summary"] = SUMMARIES[(method, path)]
            if {} in operation.get("security", []):
                operation["security"] = [{}]
                operation["description"] = f"{ANONYMOUS_NOTE}\n\n{operation.get('description', '')}".strip()
    return result
