"""BM25 statistics stay exact through every write: create, update, delete, import, moves, reindex,
and two writers at once. "Exact" is checked against a recount from the documents' own vectors."""

from __future__ import annotations

import threading
import uuid
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection, connections
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from documents.models import Document
from documents.services import DocumentInput, document_create, document_update, documents_delete, documents_import

pytestmark = pytest.mark.django_db

# Recount from the stored vectors, independently of the triggers' tables.
RECOUNT_SQL = """
SELECT count(DISTINCT d.id),
       coalesce(sum(cardinality(array_positions(v.weights, 'A'))), 0),
       coalesce(sum(cardinality(v.weights) - cardinality(array_positions(v.weights, 'A'))), 0)
FROM documents_document d LEFT JOIN LATERAL unnest(d.search_vector) v ON true
WHERE d.collection = %s
"""
RECOUNT_DF_SQL = """
SELECT v.lexeme, count(*) FROM documents_document d CROSS JOIN LATERAL unnest(d.search_vector) v
WHERE d.collection = %s GROUP BY v.lexeme
"""
STORED_SQL = """
SELECT c.doc_count, c.title_tokens, c.body_tokens FROM search_bm25_collection c WHERE c.name = %s
"""
STORED_DF_SQL = """
SELECT t.lexeme, t.df FROM search_bm25_term t JOIN search_bm25_collection c ON c.id = t.collection_id
WHERE c.name = %s AND t.df > 0
"""
STORED_POSTINGS_SQL = """
SELECT count(*), count(DISTINCT p.document_id) FROM search_bm25_posting p
JOIN search_bm25_document l ON l.document_id = p.document_id
JOIN search_bm25_collection c ON c.id = l.collection_id WHERE c.name = %s
"""


def statistics(collection: str, using=connection) -> dict:
    """Return the stored statistics next to a fresh recount (both must be equal)."""
    with using.cursor() as cursor:
        cursor.execute(RECOUNT_SQL, [collection])
        documents, title_tokens, body_tokens = cursor.fetchone()
        cursor.execute(RECOUNT_DF_SQL, [collection])
        df = dict(cursor.fetchall())
        cursor.execute(STORED_SQL, [collection])
        stored = cursor.fetchone() or (0, 0, 0)
        cursor.execute(STORED_DF_SQL, [collection])
        stored_df = dict(cursor.fetchall())
        cursor.execute(STORED_POSTINGS_SQL, [collection])
        postings, posted_documents = cursor.fetchone()
    return {
        "recount": {"totals": (documents, title_tokens, body_tokens), "df": df, "postings": sum(df.values())},
        "stored": {"totals": tuple(stored), "df": stored_df, "postings": postings},
        "documents_with_postings": posted_documents,
    }


def assert_exact(collection: str, *, documents: int) -> dict:
    found = statistics(collection)
    assert found["stored"] == found["recount"]
    assert found["recount"]["totals"][0] == documents
    return found


@pytest.fixture
def collection() -> str:
    return f"stats-{uuid.uuid4().hex[:8]}"


def add(collection: str, title: str, body: str) -> Document:
    return document_create(item=DocumentInput(title=title, body=body), collection=collection).document


def test_it_counts_created_and_updated_documents(collection):
    first = add(collection, "Orchard apples", "Apples and pears grow in the orchard.")
    add(collection, "Pear trees", "Pears need a cold winter; apples too.")
    assert_exact(collection, documents=2)

    document_update(document=first, body="Only cherries now, and plums.")
    found = assert_exact(collection, documents=2)
    assert found["stored"]["df"]["cherri"] == 1
    assert found["stored"]["df"]["pear"] == 1  # only the other document now
    assert found["stored"]["df"]["appl"] == 2  # the edited one's title and the other's body


def test_it_forgets_deleted_documents_whichever_way_they_are_deleted(collection):
    staff = User.objects.create_user(f"stats-{collection}", password="pw", is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(staff)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    documents = [add(collection, f"Note {i}", f"Apples number {i} and shared words.") for i in range(5)]
    assert_exact(collection, documents=5)

    documents_delete(documents=[documents[0]])
    assert_exact(collection, documents=4)
    # The REST API and the admin only delete documents of the library; move two there.
    Document.objects.filter(pk__in=[documents[1].pk, documents[2].pk]).update(collection="library")
    assert_exact(collection, documents=2)
    assert api.delete(f"/api/v1/documents/{documents[1].pk}").status_code == 204
    response = admin.post(f"/admin/documents/document/{documents[2].pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    Document.objects.filter(pk=documents[3].pk).delete()  # a plain queryset delete, no service
    assert_exact(collection, documents=1)
    assert not Document.objects.filter(pk__in=[d.pk for d in documents[:4]]).exists()


def test_it_counts_a_bulk_import_and_its_duplicates_once(collection):
    items = [DocumentInput(title=f"Bulk {i % 30}", body=f"Bulk body {i % 30} with apples.") for i in range(40)]
    outcome = documents_import(items=items, collection=collection, batch_size=7)
    assert (outcome.created, outcome.duplicates) == (30, 10)
    assert_exact(collection, documents=30)


def test_it_moves_the_counts_with_a_document_that_changes_collection(collection):
    moving = add(collection, "Wanderer", "A document about comets.")
    add(collection, "Stayer", "A document about planets.")
    other = f"{collection}-other"
    Document.objects.filter(pk=moving.pk).update(collection=other)
    assert_exact(collection, documents=1)
    assert_exact(other, documents=1)


def test_it_rebuilds_exact_statistics_with_reindex_documents(collection, settings):
    for i in range(4):
        add(collection, f"Doc {i}", f"Text {i} about apples.")
    with connection.cursor() as cursor:  # damage the statistics, as a bug or a manual edit might
        cursor.execute(
            "UPDATE search_bm25_term SET df = df + 5 WHERE collection_id = "
            "(SELECT id FROM search_bm25_collection WHERE name = %s)",
            [collection],
        )
    assert statistics(collection)["stored"] != statistics(collection)["recount"]
    settings.SEARCH_BM25_K1 = 0.9
    call_command("reindex_documents", "--collection", collection, stdout=StringIO(), stderr=StringIO())
    assert_exact(collection, documents=4)
    with connection.cursor() as cursor:
        cursor.execute("SELECT k1 FROM search_bm25_collection WHERE name = %s", [collection])
        assert cursor.fetchone()[0] == 0.9


def test_it_loses_no_count_with_two_writers_at_once(collection):
    """Two threads, each with its own connection, import overlapping words at the same time."""
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(number: int) -> None:
        try:
            start.wait(timeout=30)
            for batch in range(3):
                items = [
                    DocumentInput(title=f"Writer {number} doc {batch}-{i}", body=f"shared apples words {number} {i}")
                    for i in range(20)
                ]
                documents_import(items=items, collection=collection, batch_size=5)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(number,)) for number in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert not errors, errors
        found = assert_exact(collection, documents=120)
        assert found["stored"]["df"]["appl"] == 120
    finally:
        cleanup = threading.Thread(
            target=lambda: (Document.objects.filter(collection=collection).delete(), connections.close_all())
        )
        cleanup.start()
        cleanup.join(timeout=60)
