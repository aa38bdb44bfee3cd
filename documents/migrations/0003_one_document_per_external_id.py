"""One document per external id within a collection.

Two imports of the same ids at once could each create every record (issue 25, finding 8), so a
database may hold several documents under one id. Before the constraint goes on, each such id
keeps its newest version (the latest `updated_at`, then the highest id); the others go, with their
chunks. Judgments of a removed copy move to the kept version unless its judge already graded that
version for the query. The BM25 index follows by its own triggers (search 0002), in this
transaction. Vectors of removed chunks stay on disk until `manage.py prune_vectors`.
"""

from django.db import migrations, models

REPAIR = """
-- Foreign keys are checked per statement here, so that the constraint can be added in the same
-- transaction (no pending trigger events).
SET CONSTRAINTS ALL IMMEDIATE;

CREATE TEMPORARY TABLE documents_0003_replaced ON COMMIT DROP AS
SELECT id, keep FROM (
    SELECT id, first_value(id) OVER w AS keep, row_number() OVER w AS n
    FROM documents_document WHERE external_id <> ''
    WINDOW w AS (PARTITION BY collection, external_id ORDER BY updated_at DESC, id DESC)
) versions
WHERE n > 1;

DO $$
BEGIN
    IF to_regclass('evaluation_judgment') IS NOT NULL THEN
        -- One judgment per judge, query and kept version: the most recent of the removed copies'.
        UPDATE evaluation_judgment j SET document_id = r.keep
        FROM documents_0003_replaced r
        WHERE j.document_id = r.id
          AND j.id IN (
              SELECT DISTINCT ON (r2.keep, j2.query, j2.user_id, judge) j2.id
              FROM evaluation_judgment j2 JOIN documents_0003_replaced r2 ON r2.id = j2.document_id
              CROSS JOIN LATERAL (SELECT CASE WHEN j2.user_id IS NULL THEN j2.client_hash END AS judge) c
              ORDER BY r2.keep, j2.query, j2.user_id, judge, j2.updated_at DESC, j2.id DESC)
          AND NOT EXISTS (
              SELECT 1 FROM evaluation_judgment k
              WHERE k.document_id = r.keep AND k.query = j.query
                AND (k.user_id = j.user_id
                     OR (j.user_id IS NULL AND k.user_id IS NULL AND k.client_hash = j.client_hash)));
        DELETE FROM evaluation_judgment WHERE document_id IN (SELECT id FROM documents_0003_replaced);
    END IF;
END $$;

DELETE FROM documents_chunk WHERE document_id IN (SELECT id FROM documents_0003_replaced);
DELETE FROM documents_document WHERE id IN (SELECT id FROM documents_0003_replaced);
"""


class Migration(migrations.Migration):
    dependencies = [("documents", "0002_hyphenated_words_as_parts")]

    operations = [
        migrations.RunSQL(REPAIR, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="document",
            constraint=models.UniqueConstraint(
                condition=models.Q(("external_id", ""), _negated=True),
                fields=("collection", "external_id"),
                name="document_unique_external_id",
            ),
        ),
    ]
