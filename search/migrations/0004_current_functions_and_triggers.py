"""Every BM25 function and trigger as they are now, for databases migrated before they changed.

0002 and 0003 were edited after they were first committed (518ba81 and 030a37c: search_bm25_add's
work_mem and lengths, the posting primary key that covers the counts, the term table's fillfactor;
d204aa5: the change-log triggers pair each id with its own collection). A database migrated
before those commits kept the old definitions, because Django never runs an applied migration
again. This migration installs the current ones everywhere; a database created fresh gets the
same result (tests/search/test_migrations.py compares both). Never edit a committed migration:
write the next one.

Where the old change-log triggers were installed, a statement that wrote documents of several
collections could log a document under the wrong collection, so a collection's packs may be
stale without the log saying so: those packs are taken again here, with the smallest df they held.
"""

from django.db import migrations

# The impact parameters a new collection starts with (as in 0002; scores always use the settings).
INITIAL_K1 = 0.8
INITIAL_B = 0.8
INITIAL_TITLE_WEIGHT = 4.0

# Collections whose packs were taken while the old change-log triggers (without ORDER BY) ran.
STALE_PACKS = """
CREATE TEMPORARY TABLE search_0004_stale_packs ON COMMIT DROP AS
SELECT c.name, (SELECT min(k.df) FROM search_bm25_pack k WHERE k.collection_id = c.id) AS min_df
FROM search_bm25_collection c
WHERE EXISTS (SELECT 1 FROM search_bm25_pack k WHERE k.collection_id = c.id)
  AND EXISTS (SELECT 1 FROM pg_proc p WHERE p.proname = 'search_bm25_log_insert' AND p.prosrc NOT LIKE '%ORDER BY id%');
"""

FUNCTIONS = f"""
-- BM25's term weight without the idf, BM25F-style over title and body (Robertson, Zaragoza and
-- Taylor 2004, "Simple BM25 extension to multiple weighted fields"):
--   tf~ = title_weight * tf_title / B(title) + tf_body / B(body),
--   B(f) = 1 - b + b * length(f) / average length(f),
--   weight = tf~ (k1 + 1) / (tf~ + k1)  = (k1 + 1) * (1 - k1 / (tf~ + k1)).
-- Written as one expression (tf~ appears once) so PostgreSQL inlines it into the scoring query.
CREATE OR REPLACE FUNCTION search_bm25_weight(
    tf_title integer, tf_body integer, title_tokens integer, body_tokens integer,
    avg_title float8, avg_body float8, k1 float8, b float8, title_weight float8
) RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (k1 + 1) * (1 - k1 / (k1
        + CASE WHEN tf_title > 0
               THEN title_weight * tf_title / (1 - b + b * title_tokens / greatest(avg_title, 1e-9))
               ELSE 0 END
        + CASE WHEN tf_body > 0
               THEN tf_body / (1 - b + b * body_tokens / greatest(avg_body, 1e-9))
               ELSE 0 END))
$$;

-- Take the statistics rows of the collections of `names` (creating missing ones), in id order.
CREATE OR REPLACE FUNCTION search_bm25_lock(names text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_bm25_collection (name, doc_count, title_tokens, body_tokens, k1, b, title_weight)
    SELECT DISTINCT n, 0, 0, 0, {INITIAL_K1}, {INITIAL_B}, {INITIAL_TITLE_WEIGHT} FROM unnest(names) AS n ORDER BY 1
    ON CONFLICT (name) DO NOTHING;
    PERFORM 1 FROM search_bm25_collection WHERE name = ANY(names) ORDER BY id FOR UPDATE;
END $$;

-- Forget documents: their postings, lengths, and their share of df and of the totals.
CREATE OR REPLACE FUNCTION search_bm25_remove(ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM search_bm25_lock(ARRAY(
        SELECT DISTINCT c.name FROM search_bm25_document d JOIN search_bm25_collection c ON c.id = d.collection_id
        WHERE d.document_id = ANY(ids)));
    WITH gone AS (
        DELETE FROM search_bm25_posting WHERE document_id = ANY(ids) RETURNING term_id
    ), counted AS (
        SELECT term_id, count(*) AS n FROM gone GROUP BY term_id
    )
    UPDATE search_bm25_term t SET df = t.df - counted.n FROM counted WHERE t.id = counted.term_id;
    WITH gone AS (
        DELETE FROM search_bm25_document WHERE document_id = ANY(ids)
        RETURNING collection_id, title_tokens, body_tokens
    ), totals AS (
        SELECT collection_id, count(*) AS n, sum(title_tokens) AS title_tokens, sum(body_tokens) AS body_tokens
        FROM gone GROUP BY collection_id
    )
    UPDATE search_bm25_collection c
    SET doc_count = c.doc_count - totals.n,
        title_tokens = c.title_tokens - totals.title_tokens,
        body_tokens = c.body_tokens - totals.body_tokens
    FROM totals WHERE c.id = totals.collection_id;
END $$;

-- Index documents from their stored vectors: lengths, totals, df and postings, in one statement.
-- work_mem: a bulk import's statement sorts its postings by lexeme and by document; the default
-- 4 MB spills a 10,000-document batch to disk (docs/benchmarks.md, section 4).
CREATE OR REPLACE FUNCTION search_bm25_add(ids bigint[]) RETURNS void LANGUAGE plpgsql
SET work_mem = '64MB' AS $$
BEGIN
    PERFORM search_bm25_lock(ARRAY(SELECT DISTINCT collection FROM documents_document WHERE id = ANY(ids)));
    WITH lex AS MATERIALIZED (
        -- One row per (document, lexeme): how often it occurs in the title (A) and the body (B).
        -- tsvector keeps at most 256 positions per lexeme, and positions above 16383 merge:
        -- counts of very long documents are capped the same way for tf and length.
        SELECT d.id AS document_id, c.id AS collection_id, v.lexeme,
               cardinality(array_positions(v.weights, 'A')) AS tf_title,
               cardinality(v.weights) - cardinality(array_positions(v.weights, 'A')) AS tf_body
        FROM documents_document d
        JOIN search_bm25_collection c ON c.name = d.collection
        CROSS JOIN LATERAL unnest(d.search_vector) AS v
        WHERE d.id = ANY(ids)
    ), lengths AS MATERIALIZED (
        SELECT document_id, collection_id, sum(tf_title)::integer AS title_tokens,
               sum(tf_body)::integer AS body_tokens
        FROM lex GROUP BY document_id, collection_id
        UNION ALL
        -- A document with nothing indexable (only stop words) still counts in N, with length 0.
        SELECT d.id, c.id, 0, 0
        FROM documents_document d JOIN search_bm25_collection c ON c.name = d.collection
        WHERE d.id = ANY(ids) AND length(d.search_vector) = 0
    ), stored_lengths AS (
        INSERT INTO search_bm25_document (document_id, collection_id, title_tokens, body_tokens)
        SELECT document_id, collection_id, title_tokens, body_tokens FROM lengths
    ), totals AS (
        UPDATE search_bm25_collection c
        SET doc_count = c.doc_count + t.n,
            title_tokens = c.title_tokens + t.title_tokens,
            body_tokens = c.body_tokens + t.body_tokens
        FROM (
            SELECT collection_id, count(*) AS n, sum(title_tokens) AS title_tokens, sum(body_tokens) AS body_tokens
            FROM lengths GROUP BY collection_id
        ) t
        WHERE c.id = t.collection_id
        RETURNING c.id, c.doc_count, c.title_tokens, c.body_tokens, c.k1, c.b, c.title_weight
    ), terms AS (
        INSERT INTO search_bm25_term (collection_id, lexeme, df)
        SELECT collection_id, lexeme, count(*) FROM lex GROUP BY collection_id, lexeme ORDER BY collection_id, lexeme
        ON CONFLICT (collection_id, lexeme) DO UPDATE SET df = search_bm25_term.df + EXCLUDED.df
        RETURNING id, collection_id, lexeme
    )
    INSERT INTO search_bm25_posting (document_id, term_id, tf_title, tf_body, title_tokens, body_tokens, impact)
    SELECT lex.document_id, terms.id, lex.tf_title, lex.tf_body, lengths.title_tokens, lengths.body_tokens,
           search_bm25_weight(lex.tf_title, lex.tf_body, lengths.title_tokens, lengths.body_tokens,
                              totals.title_tokens::float8 / totals.doc_count,
                              totals.body_tokens::float8 / totals.doc_count,
                              totals.k1, totals.b, totals.title_weight)
    FROM lex
    JOIN terms ON terms.collection_id = lex.collection_id AND terms.lexeme = lex.lexeme
    JOIN lengths ON lengths.document_id = lex.document_id
    JOIN totals ON totals.id = lex.collection_id;
END $$;

-- Rebuild one collection's index from its documents, with new impact parameters.
CREATE OR REPLACE FUNCTION search_bm25_rebuild(target text, new_k1 float8, new_b float8, new_title_weight float8)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    found bigint;
BEGIN
    PERFORM search_bm25_lock(ARRAY[target]);
    DELETE FROM search_bm25_posting p USING search_bm25_document d, search_bm25_collection c
    WHERE p.document_id = d.document_id AND d.collection_id = c.id AND c.name = target;
    DELETE FROM search_bm25_document d USING search_bm25_collection c WHERE d.collection_id = c.id AND c.name = target;
    DELETE FROM search_bm25_term t USING search_bm25_collection c WHERE t.collection_id = c.id AND c.name = target;
    UPDATE search_bm25_collection
    SET doc_count = 0, title_tokens = 0, body_tokens = 0, k1 = new_k1, b = new_b, title_weight = new_title_weight
    WHERE name = target;
    PERFORM search_bm25_add(ARRAY(SELECT id FROM documents_document WHERE collection = target));
    SELECT doc_count INTO found FROM search_bm25_collection WHERE name = target;
    RETURN found;
END $$;

CREATE OR REPLACE FUNCTION search_bm25_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM search_bm25_add(ARRAY(SELECT id FROM new_rows));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION search_bm25_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed bigint[];
BEGIN
    -- Only rows whose vector or collection changed (an edit of the metadata costs nothing here).
    changed := ARRAY(
        SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.search_vector IS DISTINCT FROM o.search_vector OR n.collection IS DISTINCT FROM o.collection);
    IF cardinality(changed) > 0 THEN
        PERFORM search_bm25_remove(changed);
        PERFORM search_bm25_add(changed);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION search_bm25_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM search_bm25_remove(ARRAY(SELECT id FROM old_rows));
    RETURN NULL;
END $$;

-- The change log of the packed collections (0003): each id with its own collection.
CREATE OR REPLACE FUNCTION search_bm25_log(ids bigint[], names text[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO search_bm25_change (collection_id, document_id)
    SELECT c.id, x.id FROM unnest(ids, names) AS x(id, name)
    JOIN search_bm25_collection c ON c.name = x.name
    WHERE EXISTS (SELECT 1 FROM search_bm25_pack k WHERE k.collection_id = c.id)
$$;

CREATE OR REPLACE FUNCTION search_bm25_log_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Ordered by id both times, so that each id meets its own collection.
    PERFORM search_bm25_log(ARRAY(SELECT id FROM new_rows ORDER BY id),
                            ARRAY(SELECT collection FROM new_rows ORDER BY id));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION search_bm25_log_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    names text[];
BEGIN
    SELECT array_agg(x.id), array_agg(x.name) INTO ids, names FROM (
        SELECT n.id, unnest(ARRAY[o.collection, n.collection]) AS name
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.search_vector IS DISTINCT FROM o.search_vector OR n.collection IS DISTINCT FROM o.collection
    ) x;
    IF ids IS NOT NULL THEN
        PERFORM search_bm25_log(ids, names);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION search_bm25_log_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Ordered by id both times, so that each id meets its own collection.
    PERFORM search_bm25_log(ARRAY(SELECT id FROM old_rows ORDER BY id),
                            ARRAY(SELECT collection FROM old_rows ORDER BY id));
    RETURN NULL;
END $$;

-- Take one collection's packs afresh: every term with at least `min_df` documents. The log is
-- emptied first, in an earlier snapshot than the postings are read in: a document written in
-- between stays logged (and is read live, harmlessly), none is packed stale and unlogged.
-- Two packings of one collection queue on an advisory lock; writers are not held up.
CREATE OR REPLACE FUNCTION search_bm25_pack(target text, min_df integer) RETURNS integer LANGUAGE plpgsql
SET work_mem = '256MB' AS $$
DECLARE
    cid bigint;
    packed integer;
BEGIN
    SELECT id INTO cid FROM search_bm25_collection WHERE name = target;
    IF cid IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(2512, cid::integer);
    DELETE FROM search_bm25_pack WHERE collection_id = cid;
    DELETE FROM search_bm25_change WHERE collection_id = cid;
    INSERT INTO search_bm25_pack (term_id, collection_id, df, documents, tf_title, tf_body, title_tokens, body_tokens)
    SELECT t.id, cid, count(*),
           string_agg(int8send(p.document_id), ''::bytea ORDER BY p.document_id),
           string_agg(int2send(p.tf_title), ''::bytea ORDER BY p.document_id),
           string_agg(int2send(p.tf_body), ''::bytea ORDER BY p.document_id),
           string_agg(int4send(p.title_tokens), ''::bytea ORDER BY p.document_id),
           string_agg(int4send(p.body_tokens), ''::bytea ORDER BY p.document_id)
    FROM search_bm25_term t
    CROSS JOIN LATERAL (SELECT * FROM search_bm25_posting x WHERE x.term_id = t.id OFFSET 0) p
    WHERE t.collection_id = cid AND t.df >= min_df
    GROUP BY t.id;
    GET DIAGNOSTICS packed = ROW_COUNT;
    RETURN packed;
END $$;

-- The triggers, as 0002 and 0003 create them (unchanged; replaced so that this is the one place
-- that shows them all). PostgreSQL allows transition tables only on single-event triggers.
CREATE OR REPLACE TRIGGER search_bm25_insert AFTER INSERT ON documents_document
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_bm25_after_insert();
CREATE OR REPLACE TRIGGER search_bm25_update AFTER UPDATE ON documents_document
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_bm25_after_update();
CREATE OR REPLACE TRIGGER search_bm25_delete AFTER DELETE ON documents_document
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_bm25_after_delete();
CREATE OR REPLACE TRIGGER search_bm25_log_insert AFTER INSERT ON documents_document
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_bm25_log_insert();
CREATE OR REPLACE TRIGGER search_bm25_log_update AFTER UPDATE ON documents_document
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_bm25_log_update();
CREATE OR REPLACE TRIGGER search_bm25_log_delete AFTER DELETE ON documents_document
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_bm25_log_delete();

-- The primary key (document_id, term_id) also carries the counts, so that looking up a pooled
-- document's weights reads the index alone. Rebuilt only where it does not yet.
DO $$
BEGIN
    IF (SELECT i.indnatts = i.indnkeyatts FROM pg_index i
        WHERE i.indexrelid = 'search_bm25_posting_pkey'::regclass) THEN
        ALTER TABLE search_bm25_posting DROP CONSTRAINT search_bm25_posting_pkey,
            ADD CONSTRAINT search_bm25_posting_pkey PRIMARY KEY (document_id, term_id)
            INCLUDE (tf_title, tf_body, title_tokens, body_tokens);
    END IF;
END $$;

-- Every write updates df in place: room on each page lets PostgreSQL do it without new index
-- entries (HOT updates).
ALTER TABLE search_bm25_term SET (fillfactor = 70);
"""  # noqa: S608 (the only values formatted in are this module's constants)

REPACK = """
SELECT search_bm25_pack(name, min_df) FROM search_0004_stale_packs ORDER BY name;
"""


class Migration(migrations.Migration):
    dependencies = [("search", "0003_packed_postings")]

    # Going back keeps the current definitions: 0003 and 0002 drop them when they are unapplied.
    operations = [
        migrations.RunSQL(STALE_PACKS, migrations.RunSQL.noop),
        migrations.RunSQL(FUNCTIONS, migrations.RunSQL.noop),
        migrations.RunSQL(REPACK, migrations.RunSQL.noop),
    ]
