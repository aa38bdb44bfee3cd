"""Typed helpers that read settings from environment variables (12-factor)."""

import ipaddress
import os

from django.core.exceptions import ImproperlyConfigured

from common.client_address import MAX_FORWARDED_HOPS

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """Return the variable's value, or `default` when it is unset."""
    return os.environ.get(name, default)


def secret_key_weakness(key: str) -> str:
    """Return why `key` is too weak to sign production sessions ("" when it is not), by the rule of
    Django's own `check --deploy` (security.W009): 50 characters, 5 distinct, no django-insecure- prefix."""
    from django.core.checks.security.base import (
        SECRET_KEY_INSECURE_PREFIX,
        SECRET_KEY_MIN_LENGTH,
        SECRET_KEY_MIN_UNIQUE_CHARACTERS,
    )

    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"it has {len(key)} characters, fewer than {SECRET_KEY_MIN_LENGTH}"
    if len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return f"it has {len(set(key))} distinct characters, fewer than {SECRET_KEY_MIN_UNIQUE_CHARACTERS}"
    if key.startswith(SECRET_KEY_INSECURE_PREFIX):
        return f"it starts with {SECRET_KEY_INSECURE_PREFIX!r}, the mark of a key startproject generated"
    return ""


def env_bool(name: str, default: bool) -> bool:
    """Return the variable as a boolean; raise ImproperlyConfigured on anything else."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return the variable as an integer within [minimum, maximum]."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """Return the variable as a float within [minimum, maximum]."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_rate(name: str, default: str) -> str:
    """Return a throttle rate like "60/min" (a count, then s, min, hour or day), as DRF reads it."""
    raw = os.environ.get(name)
    value = default if raw is None or raw.strip() == "" else raw.strip()
    count, _, period = value.partition("/")
    if not (count.isascii() and count.isdigit()) or period[:1] not in ("s", "m", "h", "d"):
        raise ImproperlyConfigured(f"{name} must be a rate like 60/min (per s, min, hour or day), got {value!r}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Return the variable's value (stripped, lower case) when it is one of `choices`; raise
    ImproperlyConfigured on anything else."""
    raw = os.environ.get(name)
    value = default if raw is None or raw.strip() == "" else raw.strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated variable as a list of non-empty, stripped items."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_trusted_proxies(name: str) -> tuple[int, tuple[str, ...]]:
    """Return (proxy count, proxy networks) from a variable like TRUSTED_PROXIES: unset or "",
    a count ("1"), or addresses and networks ("10.0.0.2,172.16.0.0/12")."""
    value = os.environ.get(name, "").strip()
    if not value:
        return 0, ()
    if value.isascii() and value.isdigit():
        count = int(value)
        if count > MAX_FORWARDED_HOPS:
            raise ImproperlyConfigured(f"{name} must be at most {MAX_FORWARDED_HOPS} proxies, got {count}")
        return count, ()
    networks: list[str] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be a number of proxies or a list of addresses/networks, got {item!r}"
            ) from None
    return 0, tuple(networks)


def celery_redis_url(url: str) -> str:
    """Return `url` in the form kombu expects (it spells unix sockets `redis+socket://`)."""
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url
