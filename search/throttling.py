"""The search app's throttles (API searches, result pages, document pages, the schema) and the
rerank budget, all built on common.throttling: anonymous clients by address, signed-in users by
account.

Staff are never throttled. A signed-in user who is not staff has a rate of their own
(`SEARCH_USER_THROTTLE`), counted per account wherever they connect from; an anonymous client is
counted by `common.client_address.client_ident` (the socket address unless `TRUSTED_PROXIES`
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

from common.throttling import ClientRateThrottle, is_staff, throttle_owner

logger = logging.getLogger(__name__)


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


class SchemaThrottle(ClientRateThrottle):
    """The API schema, 63 KB a copy (SCHEMA_ANON_THROTTLE, SEARCH_USER_THROTTLE)."""

    anon_scope = "anon_schema"
    user_scope = "user_schema"


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
    return _used_up(budget, retry_after)


def rerank_budget_refund(request: HttpRequest, charge: RerankCharge, *, charged_at: float) -> None:
    """Give back `charge`, counted by rerank_budget_charge(now=charged_at) for a request that got no
    scores (the worker failed, was busy or missing, the budget ran out): a client pays only for
    work it received (Redis: 2 calls; nothing for staff; Redis trouble is logged and ignored)."""
    if is_staff(request):
        return
    _, owner = throttle_owner(request)
    keys, _, _ = _window_keys(owner, charged_at)
    try:
        for kind in keys:
            # decr on a key that expired meanwhile would create a negative count: skip it.
            if cache.get(keys[kind][0]) is not None:
                cache.decr(keys[kind][0], getattr(charge, kind))
    except (RedisError, OSError, ValueError):
        logger.warning("rerank budget cache unreachable; the failed request stays counted")


def rerank_budget_spent(request: HttpRequest, *, now: float | None = None) -> BudgetDecision:
    """Return whether the client's budget has room for any request at all (Redis: one read).

    Read before the request's body is parsed, so a client past its budget is turned away without
    the server decoding megabytes of JSON first. Counts nothing; fails open like the charge.
    """
    if is_staff(request):
        return BudgetDecision(allowed=True)
    signed_in, owner = throttle_owner(request)
    budget = rerank_budget(signed_in)
    smallest = RerankCharge(pairs=1, chars=1)
    now = time.time() if now is None else now
    try:
        keys, elapsed, older_weight = _window_keys(owner, now)
        counts = cache.get_many([key for pair in keys.values() for key in pair])
    except (RedisError, OSError):
        return BudgetDecision(allowed=True)
    current = {kind: int(counts.get(keys[kind][0]) or 0) for kind in keys}
    previous = {kind: int(counts.get(keys[kind][1]) or 0) for kind in keys}
    waits = _waits(smallest, budget, current, previous, elapsed, older_weight)
    if not waits:
        return BudgetDecision(allowed=True)
    return _used_up(budget, max(1, math.ceil(max(waits))))


def _used_up(budget: RerankCharge, retry_after: int) -> BudgetDecision:
    return BudgetDecision(
        allowed=False,
        retry_after=retry_after,
        message=(
            f"Rerank budget used up: a client may have {budget.pairs:,} pairs and {budget.chars:,} characters "
            "scored per minute."
        ),
    )


def _window_keys(owner: str, now: float) -> tuple[dict[str, tuple[str, str]], float, float]:
    """Return each kind's (this minute's, the minute before's) key, seconds into this minute, and
    the weight of the minute before (the share of it still inside the sliding window)."""
    window = BUDGET_WINDOW_SECONDS
    bucket = int(now // window)
    elapsed = now - bucket * window
    keys = {
        kind: (_budget_key(kind, owner, bucket), _budget_key(kind, owner, bucket - 1)) for kind in ("pairs", "chars")
    }
    return keys, elapsed, 1 - elapsed / window


def _waits(
    charge: RerankCharge,
    budget: RerankCharge,
    current: dict[str, int],
    previous: dict[str, int],
    elapsed: float,
    older_weight: float,
) -> list[float]:
    """Return, for each kind `charge` does not fit in now, the seconds until it would (none: it fits)."""
    window = BUDGET_WINDOW_SECONDS
    waits: list[float] = []
    for kind in ("pairs", "chars"):
        amount, limit = getattr(charge, kind), getattr(budget, kind)
        if previous[kind] * older_weight + current[kind] + amount <= limit:
            continue
        if current[kind] + amount <= limit:
            # The older minute's share has to fade: previous * (1 - t / window) <= limit - current - amount.
            waits.append(window * (1 - (limit - current[kind] - amount) / previous[kind]) - elapsed)
        else:
            # This minute alone is too full: wait into the next one, until this one's share fades.
            waits.append((window - elapsed) + window * (1 - (limit - amount) / current[kind]))
    return waits


def _charge(owner: str, budget: RerankCharge, charge: RerankCharge, now: float) -> int:
    """Count `charge` and return 0, or refund it and return the seconds until it would fit."""
    keys, elapsed, older_weight = _window_keys(owner, now)
    older = cache.get_many([previous for _, previous in keys.values()])
    counted: dict[str, int] = {}
    for kind in keys:
        cache.add(keys[kind][0], 0, timeout=BUDGET_KEY_SECONDS)
        counted[kind] = cache.incr(keys[kind][0], getattr(charge, kind))
    # What was counted before this request, this minute and the one before.
    current = {kind: counted[kind] - getattr(charge, kind) for kind in keys}
    previous = {kind: int(older.get(keys[kind][1]) or 0) for kind in keys}
    waits = _waits(charge, budget, current, previous, elapsed, older_weight)
    if not waits:
        return 0
    for kind in keys:
        cache.decr(keys[kind][0], getattr(charge, kind))
    return max(1, math.ceil(max(waits)))


def _budget_key(kind: str, owner: str, bucket: int) -> str:
    return f"rerank_budget_{kind}_{owner}_{bucket}"
