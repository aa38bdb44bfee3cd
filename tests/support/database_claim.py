"""A test run claims its test database, and takes it back from a run that was killed.

A test run stopped without its teardown (SIGKILL, a machine that went away, a run from before
processes died with their parent) leaves connections open to its test database, and the next run's
DROP DATABASE would fail on every database test: "database test_searchsite is being accessed by
other users". Each run therefore holds a PostgreSQL advisory lock named after its test database
for as long as it runs (on a connection to the server's maintenance database). PostgreSQL drops
the lock with the connection, so a lock nobody holds means no live run uses that database: the
connections still open to it are left over, and are ended. A held lock means another run is live:
this one stops with a clear message instead of breaking it. Only connections to this run's own
test database are ever ended; no other database is touched.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import psycopg

# Namespaces the advisory lock, so it cannot collide with a lock the site itself takes.
LOCK_PREFIX = "searchsite test database "
# Milliseconds to wait for each left-over connection to end (PostgreSQL 14+), so that Django's
# DROP DATABASE right after does not still find it.
TERMINATE_WAIT_MS = 5000


class DatabaseInUse(RuntimeError):
    """A live test run holds the claim on this test database."""


def maintenance_url(database_url: str) -> str:
    """Return `database_url` naming the server's maintenance database (postgres) instead."""
    return urlunsplit(urlsplit(database_url)._replace(path="/postgres"))


def claim_test_database(name: str, database_url: str | None = None) -> tuple[psycopg.Connection, int]:
    """Take the claim on test database `name` and end the connections a killed run left to it.

    Return the connection that holds the claim (keep it open for the whole run; closing it
    releases the claim) and how many left-over connections were ended. Raise DatabaseInUse when a
    live run holds the claim.
    """
    connection = psycopg.connect(maintenance_url(database_url or os.environ["DATABASE_URL"]), autocommit=True)
    try:
        claimed = connection.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [LOCK_PREFIX + name]).fetchone()[0]
        if not claimed:
            holder = connection.execute(
                "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.objid::int = hashtext(%s) AND l.granted LIMIT 1",
                [LOCK_PREFIX + name],
            ).fetchone()
            since = f" since {holder[2]:%Y-%m-%d %H:%M:%S %Z}" if holder else ""
            raise DatabaseInUse(
                f"another test run is using the test database {name}{since}. Wait for it to end, or give "
                "this run a database of its own (TEST_DATABASE_NAME=..., or another DATABASE_URL)."
            )
        ended = connection.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, %s)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [TERMINATE_WAIT_MS, name],
        ).fetchone()[0]
    except BaseException:
        connection.close()
        raise
    return connection, ended
