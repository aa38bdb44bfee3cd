"""Production settings behind a TLS proxy, in a live process: HSTS on secure requests, plain HTTP
redirected (the health check excepted), and the other security headers on every answer.

tests/site/ checks `check --deploy` and the headers of the development settings in-process; this
runs gunicorn with DEBUG=0 as docker-compose does and talks to it like the proxy would.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.own_services import http
from tests.support.processes import free_port, start_gunicorn
from tests.support.production import production_env
from tests.support.session import session_database_url

HOST = "search.example.com"
HSTS = "max-age=31536000; includeSubDomains; preload"


@pytest.fixture(scope="module")
def production_site(django_db_setup, artifacts_dir: Path):
    env = production_env(
        ALLOWED_HOSTS=f"{HOST},127.0.0.1",
        DATABASE_URL=session_database_url(),
        RERANK_QUEUE=f"rerank-https-{uuid.uuid4().hex[:8]}",  # no worker: nothing is searched here
    )
    port = free_port()
    site = start_gunicorn(env, artifacts_dir / "gunicorn-https.log", port)
    yield f"http://127.0.0.1:{port}"
    site.stop()


def get(base: str, path: str, *, secure: bool):
    headers = {"Host": HOST}
    if secure:
        headers["X-Forwarded-Proto"] = "https"  # what the TLS proxy in front of gunicorn sets
    return http(base + path, headers=headers)


def test_it_sends_hsts_and_the_security_headers_behind_tls(production_site: str):
    for path in ("/api/v1/search?q=", "/api/v1/schema?format=json", "/no-such-page"):
        reply = get(production_site, path, secure=True)
        assert reply.status in (200, 404), (path, reply.status, reply.body[:500])
        assert reply.headers["Strict-Transport-Security"] == HSTS, path
        assert reply.headers["X-Content-Type-Options"] == "nosniff", path
        assert reply.headers["X-Frame-Options"] == "DENY", path
        assert reply.headers["Referrer-Policy"] == "same-origin", path
        assert reply.headers["Cross-Origin-Opener-Policy"] == "same-origin", path
        assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"], path
    assert "Traceback" not in get(production_site, "/no-such-page", secure=True).body


def test_it_redirects_plain_http_to_https_without_hsts(production_site: str):
    reply = get(production_site, "/api/v1/search?q=apple", secure=False)

    assert reply.status == 301
    assert reply.headers["Location"] == f"https://{HOST}/api/v1/search?q=apple"
    assert "Strict-Transport-Security" not in reply.headers  # HSTS only means something over TLS


def test_it_answers_the_health_check_over_plain_http(production_site: str):
    reply = get(production_site, "/healthz", secure=False)

    assert reply.status == 200 and reply.body == "ok\n"
    assert "Strict-Transport-Security" not in reply.headers
