"""Index hyphenated words as their parts: a text search configuration of our own, and the vector
rebuilt with it (documents.textsearch.TS_CONFIG explains why)."""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations

CREATE_CONFIG = """
CREATE TEXT SEARCH CONFIGURATION searchsite_english (COPY = pg_catalog.english);
-- The whole hyphenated word ("heat-transfer"); its parts stay mapped as in `english`.
ALTER TEXT SEARCH CONFIGURATION searchsite_english DROP MAPPING FOR asciihword, hword, numhword;
"""
DROP_CONFIG = "DROP TEXT SEARCH CONFIGURATION IF EXISTS searchsite_english;"


def vector(config: str) -> django.contrib.postgres.search.CombinedSearchVector:
    return django.contrib.postgres.search.SearchVector(
        "title_search", config=config, weight="A"
    ) + django.contrib.postgres.search.SearchVector("body_search", config=config, weight="B")


class Migration(migrations.Migration):
    dependencies = [("documents", "0001_initial")]

    operations = [
        migrations.RunSQL(CREATE_CONFIG, DROP_CONFIG),
        # A generated column's expression cannot be altered: drop it and add it back.
        migrations.RemoveIndex(model_name="document", name="document_search_vector_gin"),
        migrations.RemoveField(model_name="document", name="search_vector"),
        migrations.AddField(
            model_name="document",
            name="search_vector",
            field=django.db.models.GeneratedField(
                db_persist=True,
                expression=vector("searchsite_english"),
                output_field=django.contrib.postgres.search.SearchVectorField(),
            ),
        ),
        migrations.AddIndex(
            model_name="document",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_vector"], name="document_search_vector_gin"),
        ),
    ]
