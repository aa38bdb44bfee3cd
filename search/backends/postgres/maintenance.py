"""Index maintenance: rebuilding a collection's postings, taking its packs, and retaking them in
the background after enough writes. The postings themselves are kept by triggers (no Python)."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import connection, transaction

from documents.models import Document
from search.backends.postgres import bounds
from search.backends.postgres.planning import fetch

logger = logging.getLogger(__name__)

# Collections (this one, or any when None) whose packs have SEARCH_PACK_REFRESH writes logged since.
PACKS_DUE_SQL = """
SELECT c.name FROM search_bm25_collection c
WHERE (%(name)s::text IS NULL OR c.name = %(name)s::text)
  AND EXISTS (SELECT 1 FROM search_bm25_pack k WHERE k.collection_id = c.id)
  AND (SELECT count(*) FROM (SELECT 1 FROM search_bm25_change x WHERE x.collection_id = c.id
                             LIMIT %(refresh)s) logged) >= %(refresh)s
"""
# Whether no other session is taking this collection's packs (the lock search_bm25_pack takes).
PACK_FREE_SQL = """
SELECT pg_try_advisory_xact_lock(%(lock_key)s, c.id::integer) FROM search_bm25_collection c WHERE c.name = %(name)s
"""
# Take the packs of one collection afresh (search/migrations/0003_packed_postings.py).
PACK_SQL = "SELECT search_bm25_pack(%(name)s, %(min_df)s)"
DROP_PACKS_SQL = (
    "DELETE FROM search_bm25_pack k USING search_bm25_collection c WHERE k.collection_id = c.id AND c.name = %(name)s"
)
# Rebuild one collection's terms, lengths and postings from the stored vectors
# (search/migrations/0002_bm25_triggers.py), with these parameters for the impacts.
REBUILD_SQL = "SELECT search_bm25_rebuild(%(name)s, %(k1)s, %(b)s, %(title_weight)s)"

# Collections whose packs a thread of this process is taking again.
_repacking: set[str] = set()
_repacking_lock = threading.Lock()


def packs_due(*, collection: str | None) -> None:
    """Take the packs again, in the background, of collections written to SEARCH_PACK_REFRESH
    times since they were taken (SQL: one statement, only for collections that have packs)."""
    if not settings.SEARCH_PACK_REFRESH:
        return
    for (name,) in fetch(PACKS_DUE_SQL, {"name": collection, "refresh": settings.SEARCH_PACK_REFRESH}):
        repack_in_background(name)


def repack_in_background(name: str) -> None:
    """Take one collection's packs again in a thread of this process (one at a time per collection;
    across processes, the advisory lock lets one of them do it). Searches meanwhile read the
    documents written since the old packs live, exactly as before."""
    with _repacking_lock:
        if name in _repacking:
            return
        _repacking.add(name)

    def repack() -> None:
        started = time.perf_counter()
        try:
            packed_terms = pack(collection=name, unless_busy=True)
            if name in packed_terms:
                elapsed = time.perf_counter() - started
                logger.info("packs of %s taken again: %d terms in %.1f s", name, packed_terms[name], elapsed)
        except Exception:  # a failed repack leaves the old packs, still exact: log it, never raise
            logger.exception("packs of %s could not be taken again", name)
        finally:
            connection.close()  # this thread's own connection
            with _repacking_lock:
                _repacking.discard(name)

    # Not a daemon: a command that imported documents (or a worker shutting down) waits for the
    # packs rather than leaving them half taken and rolled back.
    threading.Thread(target=repack, name=f"repack-{name}", daemon=False).start()


def rebuild(*, collection: str | None = None) -> int:
    """Return how many documents were indexed after rebuilding from their stored vectors.

    Also stores the current SEARCH_BM25_* parameters as the collection's impact parameters.
    One transaction per collection (SQL: a few statements over every posting of it).
    """
    total = 0
    for name in collections(collection):
        with transaction.atomic():
            # The rebuild gives the terms new ids: the packs of the old ones go first.
            with connection.cursor() as cursor:
                cursor.execute(DROP_PACKS_SQL, {"name": name})
            parameters = {
                "name": name,
                "k1": settings.SEARCH_BM25_K1,
                "b": settings.SEARCH_BM25_B,
                "title_weight": settings.SEARCH_BM25_TITLE_WEIGHT,
            }
            rows = fetch(REBUILD_SQL, parameters)
        total += rows[0][0] or 0
        pack(collection=name)
    return total


def pack(*, collection: str | None = None, unless_busy: bool = False) -> dict[str, int]:
    """Take the packs of one collection (or all) afresh; return the terms packed per collection.

    One transaction per collection (SQL: every posting of its terms in at least
    SEARCH_PACK_MIN_DF documents, read once). Writers are not held up meanwhile. With
    `unless_busy`, a collection another session is packing right now is left to it.
    """
    packed_terms = {}
    for name in collections(collection):
        with transaction.atomic():
            if unless_busy and not _lock_free(name):
                continue
            with connection.cursor() as cursor:
                # Maintenance, not a search: a minute at 1M documents, whatever limit searches have.
                cursor.execute("SET LOCAL statement_timeout = 0")
            rows = fetch(PACK_SQL, {"name": name, "min_df": settings.SEARCH_PACK_MIN_DF})
        packed_terms[name] = rows[0][0] or 0
    return packed_terms


def _lock_free(name: str) -> bool:
    """Return whether no other session is taking the collection's packs, taking their lock if so."""
    return all(row[0] for row in fetch(PACK_FREE_SQL, {"name": name, "lock_key": bounds.PACK_LOCK_KEY}))


def collections(collection: str | None) -> list[str]:
    """Return the named collection, or every collection that has documents (one statement)."""
    if collection:
        return [collection]
    return sorted(set(Document.objects.values_list("collection", flat=True).distinct()))
