"""Migrations reach existing databases: a database migrated with the migrations as they were first
committed, then brought forward with today's, ends with every function, trigger, index and
constraint that a database created fresh has.

Django never runs an applied migration again, so an edit to a committed migration never reaches
a database that already applied it (issue 24 §3). The first-committed versions of the migrations
that were later edited are kept in tests/data/migrations_as_first_committed/ (taken from git; see
its README); each database here is a scratch database of its own on the test server.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.support.scratch_databases import database_url, migrate, scratch_databases

FIRST_COMMITTED = {
    "documents": "tests.data.migrations_as_first_committed.documents",
    "search": "tests.data.migrations_as_first_committed.search",
}

# Everything a migration defines in SQL, by category, keyed by a name (extension objects left out).
SCHEMA = {
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')""",
    "aggregates": """
        SELECT p.oid::regprocedure::text, a.aggtransfn::text || ' ' || a.aggfinalfn::text FROM pg_proc p
        JOIN pg_aggregate a ON a.aggfnoid = p.oid
        WHERE p.pronamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')""",
    "triggers": """
        SELECT t.tgrelid::regclass::text || '.' || t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t
        WHERE NOT t.tgisinternal""",
    "indexes": "SELECT tablename || '.' || indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "constraints": """
        SELECT c.conrelid::regclass::text || '.' || c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
        WHERE c.connamespace = 'public'::regnamespace""",
    "table options": """
        SELECT relname, array_to_string(reloptions, ',') FROM pg_class
        WHERE relnamespace = 'public'::regnamespace AND reloptions IS NOT NULL""",
    "columns": """
        SELECT a.attrelid::regclass::text || '.' || a.attname,
               format_type(a.atttypid, a.atttypmod) || ' storage=' || a.attstorage::text
               || ' notnull=' || a.attnotnull::text || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
               || ' generated=' || a.attgenerated::text
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0
          AND NOT a.attisdropped""",
    "text search": """
        SELECT c.cfgname || ' ' || m.maptokentype || ' ' || m.mapseqno, m.mapdict::regdictionary::text
        FROM pg_ts_config_map m JOIN pg_ts_config c ON c.oid = m.mapcfg
        WHERE c.cfgnamespace = 'public'::regnamespace""",
    "extensions": "SELECT extname, extversion FROM pg_extension",
}


def _schema(name: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(database_url(name)) as conn:
        return {kind: dict(conn.execute(query).fetchall()) for kind, query in SCHEMA.items()}


@pytest.fixture
def two_databases():
    with scratch_databases("old", "fresh") as names:
        yield names


# Documents of two collections written in one statement, then packs taken of both (min_df 1).
SEED = """
INSERT INTO documents_document (collection, external_id, title, body, language, source, metadata, content_hash,
                                title_search, body_search, created_at, updated_at)
SELECT c, c || i, 'apple river ' || i, 'stone apple ' || c, 'en', '', '{}', md5(c || i), 'apple river ' || i,
       'stone apple ' || c, now(), now()
FROM unnest(ARRAY['first', 'second']) AS c CROSS JOIN generate_series(1, 3) AS i;
SELECT search_bm25_pack(name, 1) FROM search_bm25_collection;
"""
STALE = """
DELETE FROM search_bm25_pack k USING search_bm25_term t
WHERE t.id = k.term_id AND t.lexeme = 'stone' AND k.collection_id = (SELECT id FROM search_bm25_collection
                                                                      WHERE name = 'second')
"""
# Each collection's packed terms and the documents in each pack, read back from the packs.
PACKS = """
SELECT c.name, t.lexeme, k.df, length(k.documents) / 8 FROM search_bm25_pack k
JOIN search_bm25_term t ON t.id = k.term_id JOIN search_bm25_collection c ON c.id = k.collection_id
ORDER BY 1, 2
"""


def test_a_database_migrated_before_the_edits_ends_like_a_fresh_one(two_databases):
    old, fresh = two_databases
    migrate(old, modules=FIRST_COMMITTED)  # a database as it was when each migration was first committed
    with psycopg.connect(database_url(old)) as conn:
        conn.execute(SEED)
        packs_before = conn.execute(PACKS).fetchall()
        # A pack that missed a write, as the old change-log triggers could leave one unlogged.
        conn.execute(STALE)
    migrate(old)  # then today's migrations: only the new ones run
    migrate(fresh)

    migrated, created = _schema(old), _schema(fresh)
    with psycopg.connect(database_url(old)) as conn:
        # Packs taken under the old change-log triggers are taken again, with the same terms.
        assert conn.execute(PACKS).fetchall() == packs_before
        assert conn.execute("SELECT count(*) FROM search_bm25_change").fetchone()[0] == 0

    assert created["triggers"] and created["functions"]  # the comparison compares something
    for kind in SCHEMA:
        differing = sorted(
            key
            for key in migrated[kind].keys() | created[kind].keys()
            if migrated[kind].get(key) != created[kind].get(key)
        )
        assert not differing, f"{kind} differ from a fresh database's: {differing}"
