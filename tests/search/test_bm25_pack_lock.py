"""The advisory lock that keeps two packings of a collection apart has one key, in two languages.

search_bm25_pack (SQL, search/migrations/0003_packed_postings.py) takes it; the background
repack (search.backends.postgres.maintenance) tries it first to leave a busy collection alone.
"""

from __future__ import annotations

import pytest
from django.db import connection

from search.backends.postgres.bounds import PACK_LOCK_KEY

pytestmark = pytest.mark.django_db


def test_it_tries_the_same_lock_the_pack_function_takes():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef('search_bm25_pack(text, integer)'::regprocedure)")
        definition = cursor.fetchone()[0]
    assert f"pg_advisory_xact_lock({PACK_LOCK_KEY}, cid::integer)" in definition
