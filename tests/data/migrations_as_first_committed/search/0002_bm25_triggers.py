"""The BM25 weight function and the triggers that keep the statistics and postings exact.

Every INSERT, UPDATE and DELETE on documents_document updates search_bm25_* in the same
statement (statement-level triggers over transition tables: one pass per bulk import, not one per
row). Writers of one collection take that collection's statistics row first, so concurrent
writers queue there and never lose a count or deadlock on term rows. The term frequencies come
from the stored tsvector (title weight A, body weight B), so there is one tokenizer: PostgreSQL's.
"""

from django.db import migrations

# The impact parameters a collection starts with: the SEARCH_BM25_* defaults of the settings when
# this migration was written. Scores always use the settings; `reindex_documents` stores them here.
INITIAL_K1 = 0.8
INITIAL_B = 0.8
INITIAL_TITLE_WEIGHT = 4.0

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
CREATE OR REPLACE FUNCTION search_bm25_add(ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
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
        SELECT d.id AS document_id, c.id AS collection_id,
               coalesce(sum(lex.tf_title), 0)::integer AS title_tokens,
               coalesce(sum(lex.tf_body), 0)::integer AS body_tokens
        FROM documents_document d
        JOIN search_bm25_collection c ON c.name = d.collection
        LEFT JOIN lex ON lex.document_id = d.id
        WHERE d.id = ANY(ids)
        GROUP BY d.id, c.id
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

-- PostgreSQL allows transition tables only on single-event triggers: one trigger per event.
CREATE TRIGGER search_bm25_insert AFTER INSERT ON documents_document
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_bm25_after_insert();
CREATE TRIGGER search_bm25_update AFTER UPDATE ON documents_document
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_bm25_after_update();
CREATE TRIGGER search_bm25_delete AFTER DELETE ON documents_document
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_bm25_after_delete();

-- Documents stored before this migration: index them once.
SELECT search_bm25_add(ARRAY(SELECT id FROM documents_document));
"""  # noqa: S608 (the only values formatted in are this module's constants)

DROP = """
DROP TRIGGER IF EXISTS search_bm25_insert ON documents_document;
DROP TRIGGER IF EXISTS search_bm25_update ON documents_document;
DROP TRIGGER IF EXISTS search_bm25_delete ON documents_document;
DROP FUNCTION IF EXISTS search_bm25_after_insert(), search_bm25_after_update(), search_bm25_after_delete(),
    search_bm25_rebuild(text, float8, float8, float8), search_bm25_add(bigint[]), search_bm25_remove(bigint[]),
    search_bm25_lock(text[]),
    search_bm25_weight(integer, integer, integer, integer, float8, float8, float8, float8, float8);
TRUNCATE search_bm25_posting, search_bm25_document, search_bm25_term, search_bm25_collection;
"""


class Migration(migrations.Migration):
    dependencies = [("search", "0001_bm25_index"), ("documents", "0002_hyphenated_words_as_parts")]

    operations = [migrations.RunSQL(FUNCTIONS, DROP)]
