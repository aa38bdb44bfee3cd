"""BM25 scores match values computed by hand from the formula on a tiny corpus."""

from __future__ import annotations

import math
import uuid

import pytest

from documents.services import DocumentInput, document_create
from search.backends import find_candidates
from search.backends.postgres import idf
from search.models import Bm25Collection

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(settings) -> dict[str, int]:
    """Three documents whose tokens are easy to count (PostgreSQL's `english` stems shown)."""
    settings.SEARCH_BM25_K1 = 1.2
    settings.SEARCH_BM25_B = 0.75
    settings.SEARCH_BM25_TITLE_WEIGHT = 2.0
    collection = f"bm25-{uuid.uuid4().hex[:8]}"
    texts = {
        # title: appl orchard (2 tokens); body: appl appl pie (3)
        "orchards": ("Apple orchards", "apple apple pie"),
        # no title: the derived one (the first line) is not indexed; body: banana bread recip (3)
        "bread": ("", "banana bread recipe"),
        # title: fruit (1); body: appl banana smoothi (3)
        "smoothie": ("Fruit", "apple banana smoothie"),
    }
    ids = {}
    for name, (title, body) in texts.items():
        ids[name] = document_create(item=DocumentInput(title=title, body=body), collection=collection).document.pk
    ids["collection"] = collection
    return ids


def scores(query: str, collection: str) -> dict[int, float]:
    return {c.document_id: c.score for c in find_candidates(query, k=10, collection=collection).candidates}


def test_it_keeps_the_statistics_the_hand_computation_uses(corpus):
    stats = Bm25Collection.objects.get(name=corpus["collection"])
    assert (stats.doc_count, stats.title_tokens, stats.body_tokens) == (3, 3, 9)
    assert (stats.avg_title_tokens, stats.avg_body_tokens) == (1.0, 3.0)


def test_it_scores_one_term_as_computed_by_hand(corpus):
    # N = 3, df(appl) = 2: idf = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln(1.6) = 0.4700036
    assert idf(2, 3) == pytest.approx(math.log(1.6))
    # "orchards": title tf 1, length 2 (avg 1): 1 - .75 + .75 * 2 / 1 = 1.75, so 2.0 * 1 / 1.75;
    #             body tf 2, length 3 (avg 3): normaliser 1, so 2.
    #   tf~ = 1.142857 + 2 = 3.142857; weight = tf~ * 2.2 / (tf~ + 1.2) = 1.592105
    #   score = 0.4700036 * 1.592105 = 0.748296
    # "smoothie": body tf 1, length 3: tf~ = 1, weight = 2.2 / 2.2 = 1, score = 0.4700036
    found = scores("apple", corpus["collection"])
    assert found == {
        corpus["orchards"]: pytest.approx(0.748296, abs=1e-5),
        corpus["smoothie"]: pytest.approx(0.470004, abs=1e-5),
    }
    assert list(found) == [corpus["orchards"], corpus["smoothie"]]


def test_it_sums_the_terms_of_a_disjunction(corpus):
    # banana: df 2, the same idf; in "smoothie" and "bread" body tf 1 in 3 tokens: weight 1.
    found = scores("apple banana", corpus["collection"])
    assert found == {
        corpus["smoothie"]: pytest.approx(0.940007, abs=1e-5),  # 0.4700036 * (1 + 1)
        corpus["orchards"]: pytest.approx(0.748296, abs=1e-5),
        corpus["bread"]: pytest.approx(0.470004, abs=1e-5),
    }
    assert list(found) == [corpus["smoothie"], corpus["orchards"], corpus["bread"]]


def test_it_scores_with_the_configured_parameters(corpus, settings):
    settings.SEARCH_BM25_TITLE_WEIGHT = 1.0
    settings.SEARCH_BM25_B = 0.0
    settings.SEARCH_BM25_K1 = 1.2
    # No length normalisation, title counts once: "orchards" tf~ = 1 + 2 = 3,
    # weight = 3 * 2.2 / 4.2 = 1.571429, score = 0.4700036 * 1.571429 = 0.738577
    found = scores("apple", corpus["collection"])
    assert found[corpus["orchards"]] == pytest.approx(0.738577, abs=1e-5)
