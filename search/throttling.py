"""Throttles for searches and pages: anonymous clients by address, signed-in users by account.

Staff are never throttled. A signed-in user who is not staff has a rate of their own
(`SEARCH_USER_THROTTLE`), counted per account wherever they connect from; an anonymous client is
counted by `searchsite.client_address.client_ident` (the socket address unless `TRUSTED_PROXIES`
says otherwise), never by what its headers claim. Every throttle fails open when Redis is down:
searching matters more than counting.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from searchsite.client_address import client_ident

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
    """

    anon_scope = ""
    user_scope = ""

    def __init__(self) -> None:
        self.rate = None
        self.ident = ""

    def allow_request(self, request: HttpRequest, view: object) -> bool:
        if is_staff(request):
            return True
        signed_in, self.ident = throttle_owner(request)
        self.scope = self.user_scope if signed_in else self.anon_scope
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError):
            logger.warning("throttle cache unreachable; letting the request through")
            return True

    def get_cache_key(self, request: HttpRequest, view: object) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.ident}

    def retry_after(self) -> int:
        """Return whole seconds until the next request is allowed (at least 1)."""
        return max(1, math.ceil(self.wait() or 1))


class SearchThrottle(ClientRateThrottle):
    """Searches and reranks through the API (SEARCH_ANON_THROTTLE, SEARCH_USER_THROTTLE)."""

    anon_scope = "anon_search"
    user_scope = "user_search"


class SearchPageThrottle(ClientRateThrottle):
    """Searches on the result page (SEARCH_PAGE_ANON_THROTTLE, SEARCH_USER_THROTTLE)."""

    anon_scope = "anon_search_page"
    user_scope = "user_search_page"


class DocumentPageThrottle(ClientRateThrottle):
    """The document page (DOCUMENT_PAGE_ANON_THROTTLE, SEARCH_USER_THROTTLE)."""

    anon_scope = "anon_document_page"
    user_scope = "user_document_page"


# --- the rerank API's budget ----------------------------------------------------------------

# The rerank API's budgets count over a sliding minute (two fixed minutes, the older one weighed by
# how much of it still lies within the last 60 s), kept in Redis with atomic increments so
# concurrent requests of one client cannot all pass on the same reading.
BUDGET_WINDOW_SECONDS = 60
# Counters live for two windows (the current and the one before it) and a margin.
BUDGET_KEY_SECONDS = 2 * BUDGET_WINDOW_SECONDS + 10


@dataclass(frozen=True)
class RerankCharge:
    """What one rerank request asks of the reranker: pairs, and the characters of those pairs."""

    pairs: int
    chars: int


@dataclass(frozen=True)
class BudgetDecision:
    allowed: bool
    retry_after: int = 0  # seconds, when not allowed and waiting helps
    too_large: bool = False  # the request alone is more than the client's whole budget
    message: str = ""


def rerank_budget(signed_in: bool) -> RerankCharge:
    """Return a client's budget per minute (settings RERANK_API_{ANON,USER}_{PAIRS,CHARS}_PER_MINUTE)."""
    if signed_in:
        return RerankCharge(settings.RERANK_API_USER_PAIRS_PER_MINUTE, settings.RERANK_API_USER_CHARS_PER_MINUTE)
    return RerankCharge(settings.RERANK_API_ANON_PAIRS_PER_MINUTE, settings.RERANK_API_ANON_CHARS_PER_MINUTE)


def rerank_budget_charge(request: HttpRequest, charge: RerankCharge, *, now: float | None = None) -> BudgetDecision:
    """Return whether the client may have `charge` scored now, and count it if so (Redis: 4-6 calls).

    Staff are not counted. Fails open when Redis is down, like the request throttles.
    """
    if is_staff(request):
        return BudgetDecision(allowed=True)
    signed_in, owner = throttle_owner(request)
    budget = rerank_budget(signed_in)
    if charge.pairs > budget.pairs or charge.chars > budget.chars:
        return BudgetDecision(
            allowed=False,
            too_large=True,
            message=(
                f"This request asks for {charge.pairs:,} pairs of {charge.chars:,} characters; a client may have "
                f"{budget.pairs:,} pairs and {budget.chars:,} characters scored per minute. Send fewer or shorter "
                "documents."
            ),
        )
    try:
        retry_after = _charge(owner, budget, charge, time.time() if now is None else now)
    except (RedisError, OSError):
        logger.warning("rerank budget cache unreachable; letting the request through")
        return BudgetDecision(allowed=True)
    if not retry_after:
        return BudgetDecision(allowed=True)
    return BudgetDecision(
        allowed=False,
        retry_after=retry_after,
        message=(
            f"Rerank budget used up: a client may have {budget.pairs:,} pairs and {budget.chars:,} characters "
            "scored per minute."
        ),
    )


def _charge(owner: str, budget: RerankCharge, charge: RerankCharge, now: float) -> int:
    """Count `charge` and return 0, or refund it and return the seconds until it would fit."""
    window = BUDGET_WINDOW_SECONDS
    bucket = int(now // window)
    elapsed = now - bucket * window
    older_weight = 1 - elapsed / window
    kinds = {"pairs": (charge.pairs, budget.pairs), "chars": (charge.chars, budget.chars)}
    keys = {kind: (_budget_key(kind, owner, bucket), _budget_key(kind, owner, bucket - 1)) for kind in kinds}
    older = cache.get_many([previous for _, previous in keys.values()])
    counted: dict[str, int] = {}
    for kind, (amount, _) in kinds.items():
        current_key = keys[kind][0]
        cache.add(current_key, 0, timeout=BUDGET_KEY_SECONDS)
        counted[kind] = cache.incr(current_key, amount)
    waits: list[float] = []
    for kind, (amount, limit) in kinds.items():
        previous = int(older.get(keys[kind][1]) or 0)
        current = counted[kind] - amount  # what was counted before this request
        if previous * older_weight + current + amount <= limit:
            continue
        if current + amount <= limit:
            # The older minute's share has to fade: previous * (1 - t / window) <= limit - current - amount.
            waits.append(window * (1 - (limit - current - amount) / previous) - elapsed)
        else:
            # This minute alone is too full: wait into the next one, until this one's share fades.
            waits.append((window - elapsed) + window * (1 - (limit - amount) / current))
    if not waits:
        return 0
    for kind, (amount, _) in kinds.items():
        cache.decr(keys[kind][0], amount)
    return max(1, math.ceil(max(waits)))


def _budget_key(kind: str, owner: str, bucket: int) -> str:
    return f"rerank_budget_{kind}_{owner}_{bucket}"
