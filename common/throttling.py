"""The generic throttle: anonymous clients by address, signed-in users by account.

Staff are never throttled. A signed-in user who is not staff has a rate of their own
(`SEARCH_USER_THROTTLE`), counted per account wherever they connect from; an anonymous client is
counted by `common.client_address.client_ident` (the socket address unless `TRUSTED_PROXIES`
says otherwise), never by what its headers claim. Every throttle fails open when Redis is down:
searching matters more than counting.
"""

from __future__ import annotations

import logging
import math

from django.http import HttpRequest
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from common import counters
from common.client_address import client_ident

logger = logging.getLogger(__name__)


def is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


def throttle_owner(request: HttpRequest) -> tuple[bool, str]:
    """Return (signed in, the key its requests are counted under): `user-<pk>` or the client's address."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return True, f"user-{user.pk}"
    return False, client_ident(request)


class ClientRateThrottle(SimpleRateThrottle):
    """A DRF rate throttle with one scope for anonymous clients and one for signed-in users.

    Subclasses name `anon_scope` and `user_scope`; their rates are in
    REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]. The scope, so the rate, is chosen per request.
    Counting is one atomic step in Redis (common.counters.admit), not DRF's read of the history
    and later write: at most the rate passes however many requests are in flight.
    """

    anon_scope = ""
    user_scope = ""

    def __init__(self) -> None:
        self.rate = None
        self.ident = ""
        self.seconds_to_wait = 0.0

    def allow_request(self, request: HttpRequest, view: object) -> bool:
        """Return whether the request may pass, counting it if so (Redis: one script call)."""
        if is_staff(request):
            return True
        signed_in, self.ident = throttle_owner(request)
        self.scope = self.user_scope if signed_in else self.anon_scope
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            self.seconds_to_wait = counters.admit(
                self.get_cache_key(request, view), limit=self.num_requests, window=self.duration
            )
        except (RedisError, OSError):
            logger.warning("throttle cache unreachable; letting the request through")
            return True
        return not self.seconds_to_wait

    def get_cache_key(self, request: HttpRequest, view: object) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.ident}

    def wait(self) -> float:
        """Return the seconds until the refused client's oldest counted request leaves the window."""
        return self.seconds_to_wait

    def retry_after(self) -> int:
        """Return whole seconds until the next request is allowed (at least 1)."""
        return max(1, math.ceil(self.wait() or 1))
