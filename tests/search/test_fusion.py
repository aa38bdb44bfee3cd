"""The rerank pool's fusion of BM25's candidates and the nearest documents (search.services,
search.semantic): the arithmetic of the weighted RRF and of the linear fusion, worked by hand.
tests/search/test_semantic.py runs both end to end (a real worker's vectors in PostgreSQL)."""

from __future__ import annotations

import pytest

from search import semantic
from search.semantic import SemanticHits
from search.services import _linear_fusion

# BM25's candidates 1, 2, 3 (scores 10, 5, 1); the nearest documents 4 and 1 (cosines .9, .8), and
# the cosines of 2 and 3 read from their chunk vectors (.85, .7).
BM25_ORDER = [1, 2, 3]
BM25_SCORES = {1: 10.0, 2: 5.0, 3: 1.0}
HITS = SemanticHits(documents=[4, 1], cosine={4: 0.9, 1: 0.8})
OTHER_COSINES = {2: 0.85, 3: 0.7}


def read(cosines: dict[int, float]):
    asked = []

    def cosines_of(ids: list[int]) -> dict[int, float]:
        asked.append(list(ids))
        return {i: cosines[i] for i in ids if i in cosines}

    return cosines_of, asked


def test_the_linear_fusion_weighs_scaled_bm25_and_cosine(settings):
    """Over the union 1-4: minmax(BM25) = 1, .5, .1, 0 (4 holds no query word: 0); minmax(cosine) =
    .5, .75, 0, 1. With w = .3: 1 → .3 + .35 = .65, 2 → .15 + .525 = .675, 3 → .03, 4 → .7."""
    settings.SEARCH_FUSION_BM25_WEIGHT = 0.3
    cosines_of, asked = read(OTHER_COSINES)
    assert _linear_fusion(BM25_ORDER, HITS, BM25_SCORES, cosines_of) == [4, 2, 1, 3]
    assert asked == [[2, 3]]  # only the cosines the nearest documents did not bring
    # RRF puts 1 first, being in both lists: the two fusions differ on this example.
    assert semantic.reciprocal_rank_fusion([BM25_ORDER, HITS.documents], k=60)[0][0] == 1


@pytest.mark.parametrize(("weight", "expected"), [(1.0, [1, 2, 3, 4]), (0.0, [4, 2, 1, 3])])
def test_the_weight_runs_from_bm25_alone_to_the_cosine_alone(settings, weight, expected):
    settings.SEARCH_FUSION_BM25_WEIGHT = weight
    assert _linear_fusion(BM25_ORDER, HITS, BM25_SCORES, read(OTHER_COSINES)[0]) == expected


def test_a_candidate_with_no_chunk_vector_yet_takes_the_lowest_cosine(settings):
    """3 has no vector: cosine scale over 1, 2, 4 (.8, .85, .9) = 0, .5, 1; 3 counts 0 there, and
    keeps its BM25 share .3 × .1 = .03; 1 → .3, 2 → .15 + .35 = .5, 4 → .7."""
    settings.SEARCH_FUSION_BM25_WEIGHT = 0.3
    assert _linear_fusion(BM25_ORDER, HITS, BM25_SCORES, read({2: 0.85})[0]) == [4, 2, 1, 3]


def test_without_a_way_to_read_cosines_it_gives_way_to_rrf():
    assert _linear_fusion(BM25_ORDER, HITS, BM25_SCORES, None) is None


def test_weighted_rrf_weighs_each_list():
    """BM25 [1, 2, 3], vectors [4, 5], k 60. Plain RRF: 1 and 4 score 1/61, 2 and 5 1/62, 3 1/63
    (ties: BM25's first). BM25 weight .2 (the lists weigh .4 and 1.6): 4 → 1.6/61, 5 → 1.6/62, then
    1, 2, 3 (.4/61, .4/62, .4/63). BM25 weight .8 (1.6 and .4): BM25's three first."""
    lists = [BM25_ORDER, [4, 5]]
    assert [i for i, _ in semantic.reciprocal_rank_fusion(lists, k=60)] == [1, 4, 2, 5, 3]
    to_vectors = semantic.reciprocal_rank_fusion(lists, k=60, weights=[0.4, 1.6])
    assert [i for i, _ in to_vectors] == [4, 5, 1, 2, 3]
    assert dict(to_vectors)[5] == pytest.approx(1.6 / 62)
    to_bm25 = semantic.reciprocal_rank_fusion(lists, k=60, weights=[1.6, 0.4])
    assert [i for i, _ in to_bm25] == [1, 2, 3, 4, 5]
    assert dict(to_bm25)[3] == pytest.approx(1.6 / 63)
