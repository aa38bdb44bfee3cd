"""Error pages for requests Django answers before any view runs (no such URL, a crash).

Under /api/ the answer is JSON in the API's shape ({"error": ...}), as the schema documents;
elsewhere it is Django's own page.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

API_PREFIX = "/api/"


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
