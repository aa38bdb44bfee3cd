"""A document found by meaning alone keeps its real BM25 score for the query (issue 22).

It may hold some of the query's words and still rank past the BM25 candidates the pool reads;
the bi-encoder's blend (0.3 × minmax(BM25) + 0.7 × minmax(cosine)) must then see that score, not
0. One that holds none of the query's words scores 0. The full-text order stays BM25's alone (such
a document has no full-text rank).

Here the backend's scores for given documents, against the real PostgreSQL index; the whole search
with a real worker (the blend reading those scores) is in tests/search/test_semantic.py.
"""

from __future__ import annotations

import uuid

import pytest

from documents.models import Document
from documents.services import DocumentInput, documents_import
from search.backends import find_candidates, score_documents

pytestmark = pytest.mark.django_db

QUERY = "solar wind"
LIBRARY = {
    "a": ("Solar wind", "The solar wind is a stream of plasma; solar wind speed varies."),
    "b": ("Solar wind probes", "Spacecraft measure the solar wind near the sun."),
    "e": ("Wind and solar power", "Solar farms and wind farms share the grid."),
    "f": ("Solar wind storms", "Storms in the solar wind disturb satellites."),
    # One query word, once: past the first four BM25 candidates.
    "c": ("Panel efficiency", "Solar panels convert light into electricity."),
    # None of the query's words.
    "d": ("Heliosphere outflow", "Charged particles stream outward from the corona into space."),
}


@pytest.fixture
def library() -> tuple[str, dict[str, int]]:
    name = f"semantic-bm25-{uuid.uuid4().hex[:8]}"
    documents_import(items=[DocumentInput(title=t, body=b) for t, b in LIBRARY.values()], collection=name)
    titles = {title: key for key, (title, _) in LIBRARY.items()}
    return name, {
        titles[title]: pk for pk, title in Document.objects.filter(collection=name).values_list("pk", "title")
    }


def test_the_backend_scores_given_documents_as_its_candidates_at_any_depth(library):
    name, ids = library
    found = {c.document_id: c.score for c in find_candidates(QUERY, k=50, collection=name).candidates}
    assert ids["c"] in found and ids["d"] not in found
    scores = score_documents(QUERY, list(ids.values()), collection=name)
    assert scores == found  # bit for bit; the document without the query's words is left out
    # An exclusion the document fails: it does not match the query, so no score.
    assert ids["c"] not in score_documents("solar wind -panels", [ids["c"]], collection=name)
    assert score_documents("solar wind", [ids["c"]], collection=name, languages=["zh"]) == {}
