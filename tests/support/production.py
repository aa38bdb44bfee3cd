"""The environment of a production process (as docker-compose.yml gives it), for the tests that
start one: settings checked in a child process, gunicorn with DEBUG=0."""

from __future__ import annotations

import os
import re
import secrets

from common.processes import ROOT


def settings_variables() -> set[str]:
    """Names of the variables settings.py reads, so the parent's values never leak in."""
    source = (ROOT / "searchsite" / "settings.py").read_text()
    return set(re.findall(r"""env_(?:str|bool|int|float|list|rate|trusted_proxies)\(\s*["']([A-Z0-9_]+)["']""", source))


def production_env(**changes: str | None) -> dict[str, str]:
    """Return the environment of a production process, with `changes` (None: the variable unset)."""
    env = {key: value for key, value in os.environ.items() if key not in settings_variables()}
    env.update(
        DJANGO_SETTINGS_MODULE="searchsite.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="search.example.com",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
    )
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env
