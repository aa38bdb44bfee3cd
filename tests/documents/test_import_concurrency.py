"""Imports are idempotent by external id under concurrency (issue 25, finding 8).

Two JSON Lines uploads of the same ids at once, to the live site, leave one document per id: the
one that comes second updates what the first created. Before, both planned before either wrote,
and both reported "created": two documents per id, both searchable, which no re-import repaired.
To make the two really overlap, the test holds a SHARE lock on the documents table until both
uploads are waiting inside PostgreSQL.

A database that already holds duplicates is repaired by documents 0003: the newest version of
each id stays, the BM25 index stays in step, judgments move to the kept version.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg
import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from documents.models import Document
from documents.services import documents_delete
from tests.support.own_services import http
from tests.support.scratch_databases import database_url, migrate, scratch_databases
from tests.support.session import session_database_url

RECORDS = 600  # two import batches of 500 and 100
WAIT_SECONDS = 120  # for both uploads to be waiting on the lock (a loaded 2-core machine)


@pytest.fixture
def committed_staff_token(django_db_blocker):
    """A staff user's API token committed for the live site, with its uploads removed afterwards."""
    prefix = f"race-{uuid.uuid4().hex[:8]}-"
    with django_db_blocker.unblock():
        user = User.objects.create_user(prefix, is_staff=True, is_superuser=True)
        token = Token.objects.create(user=user)
        yield token.key, prefix
        documents_delete(documents=Document.objects.filter(external_id__startswith=prefix))
        user.delete()


def jsonl(prefix: str, version: str) -> bytes:
    lines = [
        {"id": f"{prefix}{n}", "title": f"Race record {n}", "text": f"Version {version} of record {n}: {version} text."}
        for n in range(RECORDS)
    ]
    return "\n".join(json.dumps(line) for line in lines).encode()


def upload(base: str, token: str, name: str, content: bytes) -> dict:
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    reply = http(
        f"{base}/api/v1/documents/upload",
        method="POST",
        data=body,
        headers={"Authorization": f"Token {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=300,
    )
    assert reply.status == 200, reply.body[:2000]
    return reply.json()["files"][0]


def waiting_on_locks(conn: psycopg.Connection) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()[0]


def test_two_uploads_of_the_same_ids_at_once_leave_one_document_per_id(live_site, committed_staff_token):
    token, prefix = committed_staff_token
    reports: dict[str, dict] = {}

    def send(version: str) -> None:
        reports[version] = upload(live_site, token, f"race-{version}.jsonl", jsonl(prefix, version))

    threads = [threading.Thread(target=send, args=(version,)) for version in ("alpha", "beta")]
    with psycopg.connect(session_database_url()) as holder:
        holder.execute("LOCK TABLE documents_document IN SHARE MODE")  # no one writes documents yet
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + WAIT_SECONDS
        with psycopg.connect(session_database_url(), autocommit=True) as watcher:
            while waiting_on_locks(watcher) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            both_waited = waiting_on_locks(watcher) >= 2
    for thread in threads:  # the lock is gone: both go on
        thread.join(timeout=300)
    assert both_waited, "the two uploads never waited at the same time"

    stored = list(Document.objects.filter(external_id__startswith=prefix).values_list("id", "external_id", "body"))
    assert len(stored) == RECORDS == len({external_id for _, external_id, _ in stored})
    assert sum(report["created"] for report in reports.values()) == RECORDS
    assert sum(report["updated"] for report in reports.values()) == RECORDS
    bodies = dict((pk, body) for pk, _, body in stored)
    for version, report in reports.items():
        assert report["rejected"] == []
        # What an upload updated holds its text: the second writer of each id wins.
        assert all(f"Version {version} " in bodies[pk] for pk in report["updated_ids"])


DUPLICATES = """
INSERT INTO documents_document (collection, external_id, title, body, language, source, metadata, content_hash,
                                title_search, body_search, created_at, updated_at)
SELECT 'dup', 'id-' || i, 'Record ' || i, v || ' version of record ' || i, 'en', '', '{}', md5(v || i),
       'record ' || i, v || ' version of record ' || i, now() - interval '1 hour', now() - n * interval '1 minute'
FROM generate_series(1, 3) AS i,
     (VALUES ('older', 2), ('newest', 0), ('old', 1)) AS versions(v, n);
INSERT INTO documents_chunk (document_id, ordinal, text, start, "end")
SELECT id, 0, body, 0, length(body) FROM documents_document WHERE collection = 'dup';
INSERT INTO evaluation_judgment (query, language, document_id, document_hash, grade, ordering, client_hash, by_staff,
                                 created_at, updated_at)
SELECT 'record one', 'en', id, content_hash, 2, '', 'judge-a', false, now(), now()
FROM documents_document WHERE collection = 'dup' AND external_id = 'id-1' AND body LIKE 'older%';
"""
# The index's statistics and postings of collection 'dup' as the triggers keep them.
INDEX = """
SELECT c.doc_count, c.title_tokens, c.body_tokens,
       (SELECT string_agg(concat_ws(' ', p.document_id, t.lexeme, p.tf_title, p.tf_body, p.title_tokens,
                                    p.body_tokens), '; ' ORDER BY p.document_id, t.lexeme)
        FROM search_bm25_posting p JOIN search_bm25_term t ON t.id = p.term_id WHERE t.collection_id = c.id),
       (SELECT string_agg(t.lexeme || ' ' || t.df, '; ' ORDER BY t.lexeme) FROM search_bm25_term t
        WHERE t.collection_id = c.id AND t.df > 0)
FROM search_bm25_collection c WHERE c.name = 'dup'
"""


@pytest.fixture
def scratch_database():
    with scratch_databases("dup") as names:
        yield names[0]


def test_the_migration_keeps_the_newest_version_of_each_duplicated_id(scratch_database):
    name = scratch_database
    migrate(name)
    migrate(name, "documents", "0002")  # a database from before the constraint
    with psycopg.connect(database_url(name)) as conn:
        conn.execute(DUPLICATES)

    migrate(name)

    with psycopg.connect(database_url(name)) as conn:
        kept = conn.execute(
            "SELECT external_id, body FROM documents_document WHERE collection = 'dup' ORDER BY 1"
        ).fetchall()
        assert kept == [(f"id-{i}", f"newest version of record {i}") for i in (1, 2, 3)]
        assert conn.execute(
            "SELECT count(*) FROM documents_chunk c JOIN documents_document d ON d.id = c.document_id"
        ).fetchone() == (3,)
        judged = conn.execute(
            "SELECT d.body FROM evaluation_judgment j JOIN documents_document d ON d.id = j.document_id"
        ).fetchall()
        assert judged == [("newest version of record 1",)]
        index = conn.execute(INDEX).fetchone()
        assert index[0] == 3
        # The index as the triggers left it is the index rebuilt from the kept documents.
        conn.execute(
            "SELECT search_bm25_rebuild(name, k1, b, title_weight) FROM search_bm25_collection WHERE name = 'dup'"
        )
        assert conn.execute(INDEX).fetchone() == index
