"""Rerank scores cached in Redis, one entry per (model, max_length, query, document version).

A document's entry holds its best score and winning chunk. The key hashes the model and its
max_length (as the web is configured: only replies of exactly that model are stored), the query,
the document's content version (id and content hash) and the chunk texts sent, so an edited or
re-chunked document misses and is scored again while its neighbours still hit.
Redis trouble never fails a search: the cache is then simply empty.
"""

from __future__ import annotations

import hashlib
import json
import logging

from django.conf import settings
from django.core.cache import cache
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

KEY_PREFIX = "rerank:v1:"
_UNREACHABLE = (KombuError, RedisError, OSError)


def enabled() -> bool:
    return settings.RERANK_CACHE_SECONDS > 0


def entry_keys(query: str, groups: list[list[str]], versions: list[str]) -> list[str]:
    """Return one cache key per group (CPU only: hashes the texts)."""
    # The served languages are part of the key: a change of RERANKER_LANGUAGES must not let
    # cached scores answer a query the worker would now skip.
    languages = ",".join(settings.RERANKER_LANGUAGES or ["all"])
    model = f"{settings.RERANKER_MODEL}\x00{settings.RERANKER_MAX_LENGTH}\x00{languages}\x00{query}"
    keys = []
    for group, version in zip(groups, versions, strict=True):
        digest = hashlib.sha256(json.dumps([model, version, group], ensure_ascii=False).encode()).hexdigest()
        keys.append(KEY_PREFIX + digest)
    return keys


def model_key() -> str:
    return f"{KEY_PREFIX}model:{settings.RERANKER_MODEL}:{settings.RERANKER_MAX_LENGTH}"


def lookup(keys: list[str]) -> tuple[dict[str, tuple[float, int]], dict | None]:
    """Return the cached (score, best) per key found, and the model info (one Redis round trip)."""
    try:
        found = cache.get_many([*keys, model_key()])
    except _UNREACHABLE as error:
        logger.warning("rerank cache unreachable (%s); scoring without it", type(error).__name__)
        return {}, None
    model = found.pop(model_key(), None)
    return {key: tuple(value) for key, value in found.items()}, model


def store(entries: dict[str, tuple[float, int]], model: dict) -> None:
    """Cache `entries` when `model` is the configured model served as configured (one round trip)."""
    if not entries or not cacheable(model):
        return
    try:
        cache.set_many({**entries, model_key(): model}, timeout=settings.RERANK_CACHE_SECONDS)
    except _UNREACHABLE as error:
        logger.warning("rerank cache unreachable (%s); scores not cached", type(error).__name__)


def cacheable(model: dict | None) -> bool:
    """Return whether scores from `model` may be cached under the configured model's keys."""
    return bool(
        model
        and not model.get("fallback_reason")
        and model.get("requested") == settings.RERANKER_MODEL
        and model.get("max_length") == settings.RERANKER_MAX_LENGTH
    )
