"""Error pages for requests Django answers without a view (no such URL, a body too large, a crash).

Under /api/ the answer is JSON in the API's shape ({"error": ...}), as the schema documents;
elsewhere it is Django's own page.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from documents.api_parsers import too_large_message

API_PREFIX = "/api/"


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Return 400 for what Django refuses itself (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many
    fields): JSON under /api/, the HTML page elsewhere."""
    if request.path.startswith(API_PREFIX):
        if isinstance(exception, RequestDataTooBig):  # a body sent without Content-Length
            return JsonResponse({"error": too_large_message()}, status=413)
        return JsonResponse({"error": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Return 404: JSON under /api/ (e.g. /api/v1/documents/abc), the HTML page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"error": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Return 500: JSON under /api/, the HTML page elsewhere (the error itself is logged)."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"error": "Internal server error."}, status=500)
    return defaults.server_error(request)
