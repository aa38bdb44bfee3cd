"""The admin login with a limit on wrong passwords, counted per client and per account in Redis.

Our own small throttle rather than django-axes: it counts clients with the same identity as every
other throttle (searchsite.client_address, so TRUSTED_PROXIES applies and X-Forwarded-For is
not believed), it keeps its counters in the Redis the site already has (no tables, no
migrations), and it only delays: a locked client or account may try again once its window has
passed, with no lock for staff to lift by hand.

- A client (address; an IPv6 /64) gets `ADMIN_LOGIN_MAX_FAILURES` wrong passwords per
  `ADMIN_LOGIN_WINDOW_SECONDS`; past that its login POSTs answer 429, even with the right password.
- An account gets `ADMIN_LOGIN_MAX_ACCOUNT_FAILURES` per window from all clients together, so
  guessing from many addresses is slowed too. The price: someone who knows a username can keep
  its login form locked; sessions already signed in and API tokens keep working.

Like the search throttles, the counting fails open when Redis is down.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.conf import settings
from django.contrib import admin
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from redis.exceptions import RedisError

from searchsite.client_address import client_ident

logger = logging.getLogger(__name__)

# Usernames longer than this are cut before counting (Django's own field holds 150).
USERNAME_CHARS = 150


def _keys(request: HttpRequest, username: str) -> list[str]:
    account = hashlib.sha256(username.casefold()[:USERNAME_CHARS].encode("utf-8", "replace")).hexdigest()[:32]
    return [f"admin_login_failures_client_{client_ident(request)}", f"admin_login_failures_account_{account}"]


def _limits() -> list[int]:
    return [settings.ADMIN_LOGIN_MAX_FAILURES, settings.ADMIN_LOGIN_MAX_ACCOUNT_FAILURES]


def _seconds_locked(request: HttpRequest, username: str) -> int:
    """Return how long this client or account must wait before trying again (0: it may try)."""
    now = time.time()
    waits: list[float] = []
    counters = cache.get_many([f"{key}_{part}" for key in _keys(request, username) for part in ("count", "since")])
    for key, limit in zip(_keys(request, username), _limits(), strict=True):
        if int(counters.get(f"{key}_count") or 0) >= limit:
            since = float(counters.get(f"{key}_since") or now)
            waits.append(since + settings.ADMIN_LOGIN_WINDOW_SECONDS - now)
    return max(1, math.ceil(max(waits))) if waits else 0


def _count_failure(request: HttpRequest, username: str) -> None:
    window = settings.ADMIN_LOGIN_WINDOW_SECONDS
    for key in _keys(request, username):
        # The window starts at the first failure; both keys expire with it.
        cache.add(f"{key}_since", time.time(), timeout=window)
        cache.add(f"{key}_count", 0, timeout=window)
        cache.incr(f"{key}_count")


def login(request: HttpRequest) -> HttpResponse:
    """Return the admin login page; a locked client or account gets 429 with Retry-After."""
    username = request.POST.get("username", "") if request.method == "POST" else ""
    if request.method == "POST":
        try:
            wait = _seconds_locked(request, username)
        except (RedisError, OSError):
            logger.warning("login throttle cache unreachable; letting the attempt through")
            wait = 0
        if wait:
            context = {**admin.site.each_context(request), "title": "Too many attempts", "wait": wait}
            response = render(request, "admin/login_throttled.html", context, status=429)
            response["Retry-After"] = str(wait)
            return response
    response = admin.site.login(request)
    if request.method == "POST" and not (request.user.is_authenticated and request.user.is_staff):
        try:
            _count_failure(request, username)
        except (RedisError, OSError, ValueError):  # ValueError: the counter expired between two calls
            logger.warning("login throttle cache unreachable; a failed login was not counted")
    return response
