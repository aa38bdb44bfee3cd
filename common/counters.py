"""Atomic counters in the cache's Redis, one Lua script each: a sliding-window rate and reserved attempts.

Read, then write, through the cache API lets concurrent requests all pass on the same reading (40
connections got 120 searches through a limit of 60). A script runs whole inside Redis, so at most
the limit passes however many requests are in flight. Keys are the cache's own (its prefix and
version), so `cache.delete` clears them. Every call raises RedisError or OSError when Redis is
down: callers fail open.
"""

from __future__ import annotations

import uuid

from django.core.cache import cache

# KEYS[1]: a sorted set of the requests admitted in the window, each scored by its time.
# ARGV: window seconds, limit. Returns {1, 0} when admitted (and counted), else {0, seconds until
# the oldest admitted request leaves the window}, as a string (Lua numbers come back as integers).
# The time is Redis's own, so every web process counts on one clock.
_SLIDING_WINDOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(window))
  return {1, '0'}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tostring(tonumber(oldest[2]) + window - now)}
"""

# KEYS: counters; ARGV[1]: window seconds (from each counter's first count), then each key's limit.
# Counts one attempt on every key; if any is past its limit, takes them all back and returns the
# seconds until the fullest window ends (at least 1); else 0: the attempt is reserved.
_RESERVE = """
local window = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 or redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, window) end
  if count > tonumber(ARGV[i + 1]) then wait = math.max(wait, redis.call('TTL', key), 1) end
end
if wait > 0 then
  for _, key in ipairs(KEYS) do redis.call('DECR', key) end
end
return wait
"""

# KEYS: counters an attempt was reserved on; each still there (its window not over) gets it back.
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('DECR', key) end
end
return 0
"""


def admit(key: str, *, limit: int, window: float) -> float:
    """Count one request under `key` if fewer than `limit` were admitted in the last `window`
    seconds and return 0; else count nothing and return the seconds until one more may pass
    (Redis: one script call)."""
    admitted, wait = _script(_SLIDING_WINDOW)(
        keys=[cache.make_and_validate_key(key)], args=[window, limit, uuid.uuid4().hex]
    )
    return 0.0 if int(admitted) else max(0.0, float(wait))


def reserve(limits: dict[str, int], *, window: int) -> int:
    """Count one attempt under each key of `limits` and return 0, or, when any key is already at
    its limit, count nothing and return the seconds until its window ends (Redis: one script call)."""
    keys = [cache.make_and_validate_key(key) for key in limits]
    return int(_script(_RESERVE)(keys=keys, args=[window, *limits.values()]))


def release(keys: list[str]) -> None:
    """Take back an attempt `reserve` counted under `keys` (Redis: one script call)."""
    _script(_RELEASE)(keys=[cache.make_and_validate_key(key) for key in keys])


def _script(source: str):
    """Return `source` as a callable script on the cache's Redis (loaded there on first use)."""
    # Django's RedisCache has no public way to its client.
    client = cache._cache.get_client(write=True)
    return client.register_script(source)
