"""Settings from the environment, checked in child processes (this process keeps its settings)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.production import production_env

ROOT = Path(__file__).resolve().parents[2]
SETUP = "import django; django.setup()"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def improperly_configured(result: subprocess.CompletedProcess) -> str:
    """Return the ImproperlyConfigured message the child died with (fails when it did not)."""
    assert result.returncode != 0, f"settings loaded, but should not have:\n{result.stdout}"
    match = re.search(r"ImproperlyConfigured: (.+)", result.stderr)
    assert match, f"no ImproperlyConfigured in:\n{result.stderr[-3000:]}"
    return match.group(1)


def test_production_settings_pass_check_deploy() -> None:
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output


def test_production_settings_load() -> None:
    result = run(["-c", f"{SETUP}; from django.conf import settings; print(settings.DEBUG)"], production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_production_refuses_to_start_without_secret_key() -> None:
    message = improperly_configured(run(["-c", SETUP], production_env(SECRET_KEY=None)))
    assert "SECRET_KEY" in message
    assert "DEBUG" in message


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("short-but-secret", "16 characters, fewer than 50"),
        ("ab" * 40, "2 distinct characters, fewer than 5"),
        ("django-insecure-" + "k3y-0f-startproject-" * 3, "'django-insecure-'"),
    ],
)
def test_production_refuses_a_weak_secret_key(key: str, why: str) -> None:
    message = improperly_configured(run(["-c", SETUP], production_env(SECRET_KEY=key)))
    assert message.startswith("SECRET_KEY is too weak to run with DEBUG off"), message
    assert why in message, message
    assert key not in message  # the key itself never reaches a log


def test_development_takes_any_secret_key() -> None:
    result = run(["-c", SETUP], production_env(DEBUG="1", SECRET_KEY="short-but-secret"))
    assert result.returncode == 0, result.stderr


def test_development_works_without_secret_key() -> None:
    result = run(["-c", SETUP], production_env(DEBUG="1", SECRET_KEY=None))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RERANK_TIMEOUT", "abc"),
        ("RERANK_TIMEOUT", "0"),
        ("SEARCH_K_INITIAL", "0"),
        ("SEARCH_K_INITIAL", "abc"),
        ("SEARCH_K_INITIAL", "100000"),
        ("SEARCH_K_FINAL", "1.5"),
        ("RERANKER_MAX_LENGTH", "-1"),
        ("DEBUG", "maybe"),
        ("SEARCH_ANON_THROTTLE", "fast"),
        ("SEARCH_USER_THROTTLE", "60/fortnight"),
        ("TRUSTED_PROXIES", "proxy.example.com"),
        ("TRUSTED_PROXIES", "99"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    message = improperly_configured(run(["-c", SETUP], production_env(**{name: value})))
    assert message.startswith(f"{name} must be"), message
    assert repr(value) in message or value in message, message


@pytest.mark.parametrize(
    ("value", "count", "networks"),
    [("", 0, []), ("1", 1, []), ("10.0.0.2, 172.16.0.0/12", 0, ["10.0.0.2/32", "172.16.0.0/12"])],
)
def test_trusted_proxies_are_a_count_or_networks(value: str, count: int, networks: list[str]) -> None:
    shown = "print(s.TRUSTED_PROXY_COUNT, list(s.TRUSTED_PROXY_NETWORKS))"
    code = f"{SETUP}; from django.conf import settings as s; {shown}"
    result = run(["-c", code], production_env(TRUSTED_PROXIES=value))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{count} {networks}"


def test_missing_database_url_says_how_to_fix_it() -> None:
    message = improperly_configured(run(["-c", SETUP], production_env(DATABASE_URL=None)))
    assert "DATABASE_URL is not set" in message
    assert "make run" in message
    assert "DATABASE_URL=postgres://" in message


def test_a_database_other_than_postgresql_is_refused() -> None:
    message = improperly_configured(run(["-c", SETUP], production_env(DATABASE_URL="sqlite:///db.sqlite3")))
    assert "PostgreSQL" in message


def test_missing_redis_url_says_how_to_fix_it() -> None:
    message = improperly_configured(run(["-c", SETUP], production_env(REDIS_URL=None)))
    assert "REDIS_URL is not set" in message
    assert "REDIS_URL=redis://" in message


def test_worker_only_needs_no_database_url() -> None:
    # docker-compose.yml's worker runs like this: Redis and the model, no database.
    code = f"{SETUP}; from django.conf import settings; print(settings.RERANKER_DEVICE)"
    result = run(["-c", code], production_env(DATABASE_URL=None, WORKER_ONLY="1", RERANKER_DEVICE="cuda"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cuda"
