"""Packs are taken again by the web process itself, in a thread, after enough committed writes.

Not in test_bm25_packs.py: that module's tests run inside a transaction the thread cannot see
into. Here the documents are committed (and removed afterwards) without a transactional test,
whose flush would empty the database other tests' live site relies on.
"""

from __future__ import annotations

import random
import time
import uuid

import pytest
from django.db import connection

from documents.models import Document
from documents.services import DocumentInput, document_create, documents_delete, documents_import
from search.backends import get_backend
from tests.support.bm25_packs import COMMON, changes, exhaustive, ranked, uses_packs

CLEANUP_SQL = "DELETE FROM {table} x USING search_bm25_collection c WHERE x.collection_id = c.id AND c.name = %s"


@pytest.fixture
def committed_collection(django_db_blocker):
    """A collection written outside any test transaction, removed afterwards with its postings,
    statistics, packs and log."""
    name = f"repack-{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        yield name
        with connection.cursor() as cursor:
            # Packs first, so that deleting the documents logs nothing.
            cursor.execute(CLEANUP_SQL.format(table="search_bm25_pack"), [name])
        documents_delete(documents=Document.objects.filter(collection=name))
        with connection.cursor() as cursor:
            for table in ("search_bm25_change", "search_bm25_term"):
                cursor.execute(CLEANUP_SQL.format(table=table), [name])
            cursor.execute("DELETE FROM search_bm25_collection WHERE name = %s", [name])


def test_packs_are_taken_again_in_the_background_after_enough_writes(settings, committed_collection):
    """Committed writes reach the index hook; after SEARCH_PACK_REFRESH of them the packs are taken
    again by a thread of the web process, and searches go on exact throughout."""
    settings.SEARCH_EXHAUSTIVE_POSTINGS = 60
    settings.SEARCH_COMMON_TERM_POOL = 10
    settings.SEARCH_PACK_MIN_DF = 40
    settings.SEARCH_PACK_REFRESH = 5
    name = committed_collection
    rng = random.Random(3)
    items = [
        DocumentInput(title=rng.choice(COMMON), body=" ".join(rng.choice(COMMON) for _ in range(rng.randint(3, 40))))
        for _ in range(120)
    ]
    documents_import(items=items, collection=name)
    get_backend().pack(collection=name)
    assert changes(name) == 0

    for i in range(3):  # fewer writes than SEARCH_PACK_REFRESH: the packs stay as they are
        document_create(item=DocumentInput(title="apple river", body=f"stone {i}"), collection=name)
    assert changes(name) == 3
    documents_import(items=[DocumentInput(title="apple river", body=f"lantern {i}") for i in range(4)], collection=name)
    # 7 logged: the hook after this import starts a thread that takes the packs again.
    deadline = time.monotonic() + 60
    while changes(name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert changes(name) == 0
    assert uses_packs("apple river", name)
    assert ranked("apple river", name) == exhaustive("apple river", name, settings)
    # The new packs hold every document with "apple", the 7 written since the first packs included.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k.df FROM search_bm25_pack k JOIN search_bm25_term t ON t.id = k.term_id "
            "JOIN search_bm25_collection c ON c.id = k.collection_id WHERE c.name = %s AND t.lexeme = 'appl'",
            [name],
        )
        packed_df = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM documents_document WHERE collection = %s AND search_vector @@ 'appl'::tsquery",
            [name],
        )
        assert packed_df == cursor.fetchone()[0]
    assert packed_df > 7
