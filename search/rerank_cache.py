"""Rerank scores cached in Redis, one entry per (served model, query, document version).

A document's entry holds its best score and winning chunk. The key hashes the model the worker
actually serves (its name, max_length, languages and vectors id: the configured model, or the
fallback it loaded instead), the query, the document's content version (id and content hash) and
the chunk texts sent, so an edited or re-chunked document misses and is scored again while its
neighbours still hit, and a worker that switches models never answers with the other's scores.
Which model is served comes from the worker's heartbeat, else from the last reply.
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

from worker.protocol import Heartbeat, ModelInfo

logger = logging.getLogger(__name__)

KEY_PREFIX = "rerank:v1:"
_UNREACHABLE = (KombuError, RedisError, OSError)


def enabled() -> bool:
    return settings.RERANK_CACHE_SECONDS > 0


def model_identity(model: ModelInfo | None) -> str:
    """Return what tells two served models apart: the configured one's when `model` is None."""
    if model is None:
        # The served languages are part of the key: a change of RERANKER_LANGUAGES must not let
        # cached scores answer a query the worker would now skip.
        languages = ",".join(settings.RERANKER_LANGUAGES or ["all"])
        return f"{settings.RERANKER_MODEL}\x00{settings.RERANKER_MAX_LENGTH}\x00{languages}"
    languages = ",".join(model.languages or ["all"])
    return "\x00".join(str(part) for part in (model.model, model.max_length, languages, model.vectors))


def entry_keys(
    query: str, groups: list[list[str]], versions: list[str], *, model: ModelInfo | None = None
) -> list[str]:
    """Return one cache key per group for the served `model` (CPU only: hashes the texts)."""
    model = f"{model_identity(model)}\x00{query}"
    keys = []
    for group, version in zip(groups, versions, strict=True):
        digest = hashlib.sha256(json.dumps([model, version, group], ensure_ascii=False).encode()).hexdigest()
        keys.append(KEY_PREFIX + digest)
    return keys


def served_key() -> str:
    """Return the key of the model that last answered for the configured model on this queue."""
    return f"{KEY_PREFIX}served:{settings.RERANK_QUEUE}:{settings.RERANKER_MODEL}:{settings.RERANKER_MAX_LENGTH}"


def served_model() -> ModelInfo | None:
    """Return the model the worker serves now: its heartbeat's, else the last reply's (one round trip)."""
    heartbeat = Heartbeat.key(settings.RERANK_QUEUE)
    try:
        found = cache.get_many([heartbeat, served_key()])
    except _UNREACHABLE as error:
        logger.warning("rerank cache unreachable (%s); scoring without it", type(error).__name__)
        return None
    beat = Heartbeat.fresh(found.get(heartbeat))
    if beat is not None and beat.model is not None:
        return beat.model if cacheable(beat.model) else None
    last = ModelInfo.from_dict(found.get(served_key()))
    return last if cacheable(last) else None


def same_model(one: ModelInfo | None, other: ModelInfo | None) -> bool:
    return one is not None and other is not None and model_identity(one) == model_identity(other)


def lookup(keys: list[str]) -> dict[str, tuple[float, int]]:
    """Return the cached (score, best) per key found (one Redis round trip)."""
    try:
        found = cache.get_many(keys)
    except _UNREACHABLE as error:
        logger.warning("rerank cache unreachable (%s); scoring without it", type(error).__name__)
        return {}
    return {key: tuple(value) for key, value in found.items()}


def store(entries: dict[str, tuple[float, int]], model: ModelInfo | None) -> None:
    """Cache `entries` (keyed for `model`) and remember `model` as the one served (one round trip)."""
    if not entries or not cacheable(model):
        return
    try:
        cache.set_many({**entries, served_key(): model.as_dict()}, timeout=settings.RERANK_CACHE_SECONDS)
    except _UNREACHABLE as error:
        logger.warning("rerank cache unreachable (%s); scores not cached", type(error).__name__)


def cacheable(model: ModelInfo | None) -> bool:
    """Return whether scores from `model` may be cached: a reply for the configured model (itself or
    the fallback the worker loaded instead: the keys name the model that served) at the configured
    max_length."""
    return bool(
        model is not None
        and model.model
        and model.requested == settings.RERANKER_MODEL
        and model.max_length == settings.RERANKER_MAX_LENGTH
    )
