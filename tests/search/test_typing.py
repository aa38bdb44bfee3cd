"""Forgiving how people type (issue 23): typos, unfinished last words, Chinese characters.

Each test fails without its expansion (search.backends.postgres.vocabulary): the plain search of
the same words is asserted to find nothing, or to rank otherwise, beside it.
"""

from __future__ import annotations

import uuid

import pytest

from documents.services import DocumentInput, documents_import
from search.backends import find_candidates
from search.backends.postgres import bounds
from search.backends.postgres.vocabulary import one_edit

pytestmark = pytest.mark.django_db

DOCUMENTS = [
    ("Python packaging", "Python packages are built with pip and installed from an index."),
    ("Python for data", "Python notebooks and the python interpreter for data work."),
    ("Pythonista tips", "A pythonista reads well; pythonistas avoid indexes."),
    ("Mercury toxicity", "Mercury toxicity harms the nervous system; toxicity grows with exposure."),
    ("Mercury the planet", "Mercury is the planet closest to the sun."),
    ("Snakes", "A snake sheds its skin; snakes are reptiles."),
    ("大熊猫", "大熊猫是中国的国宝，熊猫爱吃竹子。"),
    ("竹林", "竹子长得很快，竹林很安静。"),
    ("天气", "今天的天气很好，适合散步。"),
]


@pytest.fixture
def collection() -> str:
    name = f"typing-{uuid.uuid4().hex[:8]}"
    documents_import(items=[DocumentInput(title=t, body=b) for t, b in DOCUMENTS], collection=name)
    return name


def titles(query: str, collection: str, *, expand: bool = True) -> list[str]:
    found = find_candidates(query, k=10, collection=collection, expand=expand)
    return [c.title for c in found.candidates]


def test_a_misspelt_word_finds_the_library_word_one_edit_away_with_a_notice(collection):
    assert titles("pyhton", collection, expand=False) == []
    found = find_candidates("pyhton", k=10, collection=collection, expand=True)
    assert {c.title for c in found.candidates} == {"Python packaging", "Python for data"}
    assert found.notices == ["Including results for python."]
    assert found.unknown_terms == 0  # the word was stood in for: results, not an empty page
    assert found.stood_in_terms == 1  # the page may still offer the corrected spelling


def test_a_typo_in_a_suffix_meets_the_right_stem_and_ranks_its_documents_first(collection):
    # As typed, toxcity is dropped and mercury alone ranks the planet first (the shorter document).
    assert titles("mercury toxcity", collection, expand=False)[0] == "Mercury the planet"
    found = find_candidates("mercury toxcity", k=10, collection=collection, expand=True)
    assert [c.title for c in found.candidates][:2] == ["Mercury toxicity", "Mercury the planet"]
    assert found.notices == ["Including results for toxicity."]


def test_a_near_spelling_scores_below_the_word_itself(collection):
    # The library has "pyhton" once and python in many more documents (COMMON_FACTOR times):
    # python's documents join, each below the exact one, though they weigh the word just as much.
    items = [DocumentInput(title="Typo", body="pyhton is how some type it")]
    items += [DocumentInput(title=f"Python {i}", body="python is how most type it") for i in range(20)]
    documents_import(items=items, collection=collection)
    assert titles("pyhton", collection, expand=False) == ["Typo"]
    found = find_candidates("pyhton", k=10, collection=collection, expand=True).candidates
    assert [c.title for c in found][:2] == ["Typo", "Python 0"]
    assert found[0].score > found[1].score


def test_short_words_are_not_corrected(collection):
    assert titles("snak", collection) == ["Snakes"]  # a completion of "snak", not a correction
    assert titles("snaek", collection) == ["Snakes"]  # five letters: one edit
    assert titles("sn", collection) == []  # too short to complete


def test_the_last_word_matches_as_a_prefix_and_exact_words_rank_first(collection):
    assert titles("pyth", collection, expand=False) == []
    assert set(titles("pyth", collection)) == {"Python packaging", "Python for data", "Pythonista tips"}
    # A word the library has is matched as typed: python's own documents, and only them.
    assert set(titles("python", collection)) == {"Python packaging", "Python for data"}
    # Only the last word is unfinished: an earlier one is matched as typed.
    assert titles("pyth packages", collection) == ["Python packaging"]


def test_a_rare_last_word_keeps_its_own_documents_above_its_completions(collection):
    documents_import(items=[DocumentInput(title="Pyth", body="pyth is a word of its own here")], collection=collection)
    ranked = find_candidates("pyth", k=10, collection=collection, expand=True).candidates
    assert ranked[0].title == "Pyth"
    assert {c.title for c in ranked[1:]} == {"Python packaging", "Python for data", "Pythonista tips"}
    assert all(c.score < ranked[0].score for c in ranked[1:])


def test_a_chinese_character_finds_the_words_that_hold_it(collection):
    assert titles("熊", collection, expand=False) == []
    assert titles("熊", collection) == ["大熊猫"]
    found = find_candidates("熊", k=10, collection=collection, expand=True)
    # jieba's search mode indexed 大熊猫 with its sub-words 大熊 and 熊猫.
    assert found.notices == ["Including results for 大熊, 大熊猫, 熊猫."]


def test_a_word_segmented_differently_meets_the_documents_word(collection):
    # 竹 alone is no word of either document (they hold 竹子 and 竹林).
    assert titles("竹", collection, expand=False) == []
    assert set(titles("竹", collection)) == {"大熊猫", "竹林"}


def test_a_chinese_word_the_library_lacks_meets_the_words_it_holds(collection):
    documents_import(items=[DocumentInput(title="竹", body="竹 很 绿")], collection=collection)
    assert "竹" in titles("竹叶", collection)  # 竹叶 is in no document; 竹 is


def test_expansion_reads_a_bounded_number_of_spellings():
    assert len(one_edit("a" * bounds.TYPO_MAX_CHARS)) <= 54 * bounds.TYPO_MAX_CHARS + 25
    assert "python" in one_edit("pyhton")


# --- the sample library, as the issue found it --------------------------------------------------


def test_the_sample_librarys_misspellings_find_their_documents():
    from documents.models import LIBRARY

    plain = find_candidates("mercury toxcity", k=3, collection=LIBRARY)
    found = find_candidates("mercury toxcity", k=3, collection=LIBRARY, expand=True)
    assert found.candidates[0].title == "Mercury Toxicity: How Mercury Poisoning Happens"
    assert found.notices == ["Including results for toxicity."]
    assert [c.title for c in plain.candidates] != [c.title for c in found.candidates]
    assert find_candidates("pyhton snak", k=10, collection=LIBRARY).candidates == []
    assert find_candidates("pyhton snak", k=10, collection=LIBRARY, expand=True).candidates


def test_the_sample_librarys_single_chinese_character_finds_the_pandas():
    from documents.models import LIBRARY

    assert find_candidates("熊", k=10, collection=LIBRARY).candidates == []
    found = [c.title for c in find_candidates("熊", k=10, collection=LIBRARY, expand=True).candidates]
    assert "大熊猫为什么吃竹子" in found


def test_the_api_forgives_typos_unless_switched_off(client, settings):
    settings.RERANK_TIMEOUT = 1.0  # no worker is needed: the full-text order is the point
    tolerant = client.get("/api/v1/search", {"q": "pyhton"}).json()
    assert tolerant["fulltext"]
    assert "Including results for python." in tolerant["notice"]
    exact = client.get("/api/v1/search", {"q": "pyhton", "typo_tolerance": "false"}).json()
    assert exact["fulltext"] == []
    assert "Including results" not in exact["notice"]


def test_the_banded_edit_distance_is_the_full_ones_within_its_limit():
    """search.suggest.edit_distance computes only the band near the diagonal (two-edit neighbours
    are compared by the hundred per word); within `limit` it equals the whole table's answer."""
    import random

    from search.suggest import edit_distance

    def full(a: str, b: str) -> int:
        table = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                cost = 0 if a[i - 1] == b[j - 1] else 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
        return table[-1][-1]

    rng = random.Random(23)
    for _ in range(3000):
        a = "".join(rng.choice("abc") for _ in range(rng.randint(0, 8)))
        b = "".join(rng.choice("abc") for _ in range(rng.randint(0, 8)))
        for limit in (1, 2, 8):
            assert edit_distance(a, b, limit=limit) == min(full(a, b), limit + 1)
