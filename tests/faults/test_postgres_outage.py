"""PostgreSQL goes down under a running site: a clear 503 (page and JSON), then recovery by itself.

The site runs as a real web process on a private PostgreSQL 16 (pgserver) of the test's own, on a
unix socket; the test stops that server (pg_ctl -m fast: every open connection drops), requests,
starts it again and requests again. The rerank worker is the session's; it needs no database.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psycopg
import pytest

from tests.support.budgets import reply_limit_seconds
from tests.support.own_services import OwnPostgres, http, manage
from tests.support.processes import ROOT, start_site
from tests.support.session import SESSION_QUEUE, child_env

pytestmark = pytest.mark.faults

# What must never reach a visitor: a stack trace or the database driver's own words.
LEAKS = ("Traceback", "OperationalError", "psycopg", "connection to server", "Exception Value")
# Seconds the site waits for a database connection (DATABASE_CONNECT_TIMEOUT): a request while the
# server is down waits no longer (a stopped local server even refuses at once).
CONNECT_TIMEOUT_SECONDS = 5
DOCUMENTS = [
    {"id": "pg-1", "title": "Granny Smith apples", "content": "Granny Smith apples are green, tart and crisp."},
    {"id": "pg-2", "title": "Apple pie", "content": "An apple pie needs tart apples, butter and cinnamon."},
    {"id": "pg-3", "title": "Pears", "content": "Pears ripen from the inside out; pick them firm."},
]


# A signed-in staff member's session, made in the site's own database (printed: its key).
SIGN_IN = (
    "from django.contrib.auth.models import User; from django.test import Client; "
    "client = Client(); "
    "client.force_login(User.objects.create_user('outage-staff', password='outage-pw-1', is_staff=True)); "
    "print(client.cookies['sessionid'].value)"
)


def assert_no_leak(body: str) -> None:
    for leak in LEAKS:
        assert leak not in body, f"{leak!r} reached the visitor:\n{body[:2000]}"


@pytest.fixture
def own_postgres(tmp_path: Path):
    postgres = OwnPostgres(tmp_path)
    postgres.start()
    yield postgres
    postgres.close()


def test_it_answers_503_while_postgres_is_down_and_recovers_by_itself(
    own_postgres: OwnPostgres, rerank_worker, artifacts_dir: Path, tmp_path: Path
):
    database_url = own_postgres.create_database("site")
    env = child_env(
        DATABASE_URL=database_url,
        RERANK_QUEUE=SESSION_QUEUE,
        RERANK_TIMEOUT="30",
        RERANK_CACHE_SECONDS="0",
        DATABASE_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT_SECONDS),
        SEARCH_ANON_THROTTLE="100000/min",
        SEARCH_PAGE_ANON_THROTTLE="100000/min",
    )
    library = tmp_path / "few.jsonl"
    library.write_text("\n".join(json.dumps(item) for item in DOCUMENTS))
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "import_documents", str(library))
    session_key = manage(env, "shell", "-c", SIGN_IN).stdout.split()[-1]
    signed_in = {"Cookie": f"sessionid={session_key}"}
    site, base = start_site(env, artifacts_dir / "web-postgres-outage.log")
    query = urllib.parse.urlencode({"q": "tart apples"})
    try:
        before = http(f"{base}/api/v1/search?{query}")
        assert before.status == 200, before.body[:2000]
        assert http(f"{base}/admin/", headers=signed_in).status == 200  # the session signs staff in
        assert before.json()["candidate_count"] == 2
        document_id = before.json()["fulltext"][0]["document_id"]

        own_postgres.stop()
        down = {
            "page": http(f"{base}/search?{query}"),
            "api": http(f"{base}/api/v1/search?{query}"),
            "document": http(f"{base}/documents/{document_id}"),
            "documents api": http(f"{base}/api/v1/documents"),
            "document api": http(f"{base}/api/v1/documents/{document_id}"),
            "healthz": http(f"{base}/healthz"),
            # The user of a request with a session cookie is read from the database.
            "page, signed in": http(f"{base}/search?{query}", headers=signed_in),
            "home, signed in": http(f"{base}/", headers=signed_in),
            "document, signed in": http(f"{base}/documents/{document_id}", headers=signed_in),
            "admin, signed in": http(f"{base}/admin/documents/document/", headers=signed_in),
            "api, signed in": http(f"{base}/api/v1/search?{query}", headers=signed_in),
            "documents api, signed in": http(f"{base}/api/v1/documents", headers=signed_in),
        }

        for name, reply in down.items():
            assert reply.status == 503, f"{name}: {reply.status}\n{reply.body[:2000]}"
            assert reply.seconds < reply_limit_seconds(CONNECT_TIMEOUT_SECONDS), name
            assert_no_leak(reply.body)
        for name in (
            "page",
            "document",
            "page, signed in",
            "home, signed in",
            "document, signed in",
            "admin, signed in",
        ):
            assert down[name].headers.get_content_type() == "text/html", name
            assert "Search is temporarily unavailable" in down[name].body, name
        for name in ("api", "documents api", "document api", "api, signed in", "documents api, signed in"):
            assert down[name].headers.get_content_type() == "application/json", name
            assert down[name].json() == {"error": "The document database is not answering; try again shortly."}
        assert site.alive()

        own_postgres.start()
        after = {
            "page": http(f"{base}/search?{query}"),
            "api": http(f"{base}/api/v1/search?{query}"),
            "document": http(f"{base}/documents/{document_id}"),
            "healthz": http(f"{base}/healthz"),
        }

        for name, reply in after.items():
            assert reply.status == 200, f"{name} after the restart: {reply.status}\n{reply.body[:2000]}"
        assert after["api"].json()["fulltext"] == before.json()["fulltext"]
        assert after["api"].json()["reranked_applied"] is True, after["api"].json()["notice"]
        assert "Granny Smith apples" in after["page"].body
    finally:
        site.stop()


# An import the database goes away from: the records, one transaction per 500 (the first batch is
# committed before the server stops).
IMPORT_RECORDS = 8_000
FIRST_BATCH = 500


def test_an_import_cut_off_by_an_outage_reports_one_line_saying_what_was_stored(own_postgres: OwnPostgres, tmp_path):
    """PostgreSQL stops during an 8,000-record import: the report has one "database unavailable"
    line that says which records were stored, not a row per record with the driver's error and
    socket path (5,000 of them before)."""
    database_url = own_postgres.create_database("imports")
    env = child_env(DATABASE_URL=database_url, RERANK_QUEUE=SESSION_QUEUE, DATABASE_CONNECT_TIMEOUT="2")
    manage(env, "migrate", "--noinput", "-v", "0")
    records = tmp_path / "records.jsonl"
    records.write_text(
        "\n".join(
            json.dumps({"id": f"r-{n}", "title": f"Record {n}", "text": f"Record {n} on orchards, rivers and pears."})
            for n in range(IMPORT_RECORDS)
        )
    )
    output = tmp_path / "import.out"
    with output.open("w") as out:
        importing = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "import_documents", str(records), "--collection", "outage"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        try:
            with psycopg.connect(database_url, autocommit=True) as watcher:
                while stored(watcher) < FIRST_BATCH and importing.poll() is None:
                    time.sleep(0.02)
            own_postgres.stop()
            importing.wait(timeout=300)
        finally:
            if importing.poll() is None:
                importing.kill()
    own_postgres.start()
    with psycopg.connect(database_url, autocommit=True) as conn:
        kept = stored(conn)

    report = output.read_text()
    assert kept < IMPORT_RECORDS, "the import finished before the outage"
    rejected = [line for line in report.splitlines() if line.lstrip().startswith("rejected ")]
    assert len(rejected) == 1, report[-4000:]
    assert rejected[0].strip() == (
        f"rejected database unavailable: records 1-{kept:,} were handled as counted here, records "
        f"{kept + 1:,}-{IMPORT_RECORDS:,} were not stored; send the file again once the database is back "
        "(stored records are skipped as unchanged)"
    )
    assert f"created {kept} documents" in report
    assert_no_leak(report)
    assert ".s.PGSQL" not in report


def stored(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM documents_document WHERE collection = 'outage'").fetchone()[0]
