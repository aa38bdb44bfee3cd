"""The admin login with a limit on wrong passwords, counted per client and per account in Redis.

Our own small throttle rather than django-axes: it counts clients with the same identity as every
other throttle (common.client_address, so TRUSTED_PROXIES applies and X-Forwarded-For is
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

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from redis.exceptions import RedisError

from common import counters
from common.client_address import client_ident

logger = logging.getLogger(__name__)

# Usernames longer than this are cut before counting (Django's own field holds 150).
USERNAME_CHARS = 150


def _keys(request: HttpRequest, username: str) -> list[str]:
    account = hashlib.sha256(username.casefold()[:USERNAME_CHARS].encode("utf-8", "replace")).hexdigest()[:32]
    return [f"admin_login_failures_client_{client_ident(request)}", f"admin_login_failures_account_{account}"]


def login(request: HttpRequest) -> HttpResponse:
    """Return the admin login page; a locked client or account gets 429 with Retry-After.

    Each POST reserves its attempt on the client's and the account's counters before the password
    is checked (one Redis script), so concurrent wrong passwords cannot all be checked on one
    reading of the counters; a login that succeeds gives its attempt back.
    """
    if request.method != "POST":
        return admin.site.login(request)
    keys = _keys(request, request.POST.get("username", ""))
    limits = dict(
        zip(keys, [settings.ADMIN_LOGIN_MAX_FAILURES, settings.ADMIN_LOGIN_MAX_ACCOUNT_FAILURES], strict=True)
    )
    try:
        # The window starts at a counter's first attempt; the counter expires with it.
        wait = counters.reserve(limits, window=settings.ADMIN_LOGIN_WINDOW_SECONDS)
        reserved = True
    except (RedisError, OSError):
        logger.warning("login throttle cache unreachable; letting the attempt through uncounted")
        wait, reserved = 0, False
    if wait:
        context = {**admin.site.each_context(request), "title": "Too many attempts", "wait": wait}
        response = render(request, "admin/login_throttled.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    response = admin.site.login(request)
    if reserved and request.user.is_authenticated and request.user.is_staff:
        try:
            counters.release(keys)
        except (RedisError, OSError):
            logger.warning("login throttle cache unreachable; a successful login stays counted")
    return response
