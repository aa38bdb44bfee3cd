"""Security headers Django does not set by itself, JSON errors for everything under /api/, and the
503 answer for a database outage wherever it surfaces."""

import logging
from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# Every page keeps to it: ours use only our own scripts, styles and images, no inline script;
# Django's admin (5.2) has no inline script or style attribute; the API docs load Swagger UI's
# start-up script and their style as files (searchsite/urls.py, templates/api/docs.html).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    """Add the Content-Security-Policy header to every answer, the admin and the API docs included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class DatabaseOutageMiddleware:
    """Answer 503 for a lost or refused database connection that a view did not handle itself.

    The views catch the outage where they query, but a request carrying a session cookie meets it
    earlier: its user is read from the database the first time anything asks (a throttle, the
    page's header, the admin), and that used to answer 500. Other database errors are bugs and
    stay 500. The page is rendered without the request: its header would ask for the user again.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("database unavailable for %s: %s", request.path, type(exception).__name__)
        if request.path.startswith(API_PREFIX):
            return JsonResponse({"error": DATABASE_UNAVAILABLE}, status=HTTPStatus.SERVICE_UNAVAILABLE)
        page = render_to_string("search/unavailable.html", {"query": ""})
        return HttpResponse(page, status=HTTPStatus.SERVICE_UNAVAILABLE)


# What the API answers while the database is down (search.api.json_exception_handler says the same).
DATABASE_UNAVAILABLE = "The document database is not answering; try again shortly."


class AdminFilterGuardMiddleware:
    """Answer 400 to an admin request whose address holds what PostgreSQL would fail on: a NUL
    character (%00) anywhere, or a regular-expression lookup (`?title__regex=(`).

    The admin passes its list filters and search straight to the database, and a value the
    database refuses surfaces while the page renders, as a 500 (issue 25, finding 12; the
    regular expressions were found by tests/site/test_fuzz_pages_admin.py). Refusing here
    covers every admin list, Django's own included. Our own API filters check their values
    themselves (evaluation.api); search queries drop control characters (clean_query).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(ADMIN_PREFIX):
            if _holds_nul(request):
                return _bad_filter(
                    "A filter or search in this address holds a NUL character (%00), which no field can contain."
                )
            if any(name.endswith(REGEX_LOOKUPS) for name in request.GET):
                return _bad_filter("Admin lists do not filter by regular expression (__regex, __iregex).")
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Return 400 when a hand-written admin filter value cannot be applied (`?created__year=-1`
        fails in Python while the list is counted, after the admin checked the lookup)."""
        if not (request.path.startswith(ADMIN_PREFIX) and request.method == "GET" and request.GET):
            return None
        if not isinstance(exception, ValueError | TypeError | OverflowError | ValidationError):
            return None
        logger.warning("admin filter refused for %s: %s: %s", request.path, type(exception).__name__, exception)
        return _bad_filter("A filter in this address cannot be applied to this list.")


def _bad_filter(message: str) -> HttpResponse:
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


def _holds_nul(request: HttpRequest) -> bool:
    """Return whether a query-string parameter's name or value (or the path) holds NUL."""
    if "\x00" in request.path:
        return True
    return any("\x00" in name or any("\x00" in value for value in values) for name, values in request.GET.lists())


class ApiJsonErrorsMiddleware:
    """Answer every error under /api/ in the API's JSON shape, whatever produced it.

    DRF's views already answer JSON; this covers the rest: a path that matches no URL, a method a
    view does not allow, a body over DATA_UPLOAD_MAX_MEMORY_SIZE (refused here with 413 before it
    is read), a crash, and Django's debug pages when DEBUG is on. Headers such as Retry-After and
    Allow are kept.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if _content_length(request) > limit:
            return JsonResponse(
                {"error": f"The request body is larger than {limit:,} bytes."},
                status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        response = self.get_response(request)
        if response.status_code < HTTPStatus.BAD_REQUEST or _is_json(response):
            return response
        return _as_json(response)


API_PREFIX = "/api/"
ADMIN_PREFIX = "/admin/"
# Lookups whose value PostgreSQL compiles (an invalid pattern fails the query): never in an address.
REGEX_LOOKUPS = ("__regex", "__iregex")
# Kept from the original error response: what a client needs to act on the error.
KEPT_HEADERS = ("Retry-After", "Allow", "WWW-Authenticate", "Vary")


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip() in ("application/json", "application/problem+json")


def _as_json(response: HttpResponse) -> JsonResponse:
    status = HTTPStatus(response.status_code) if response.status_code in HTTPStatus._value2member_map_ else None
    message = f"{status.phrase}." if status else "Error."
    if response.status_code == HTTPStatus.NOT_FOUND:
        message = "Not found: no such path or object under /api/ (see /api/v1/docs)."
    elif response.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        message = f"Method not allowed (allowed: {response.get('Allow', 'none')})."
    elif response.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR and status is HTTPStatus.INTERNAL_SERVER_ERROR:
        message = "Internal server error."
    converted = JsonResponse({"error": message}, status=response.status_code)
    for name in KEPT_HEADERS:
        if name in response:
            converted[name] = response[name]
    return converted
