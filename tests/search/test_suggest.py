"""'Did you mean' from the library's own vocabulary: English typos, rare words, Chinese characters."""

from __future__ import annotations

import uuid

import pytest

from documents.services import DocumentInput, documents_import
from search import suggest
from search.backends import get_backend
from search.query import parse


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("python", "pythn", 1), ("jaguar", "jagaur", 1), ("coffee", "cofee", 1), ("kitten", "sitting", 3), ("", "ab", 2)],
)
def test_it_counts_edits_with_a_swap_as_one(a, b, distance):
    assert suggest.edit_distance(a, b, limit=5) == distance


def test_it_stops_counting_past_the_limit():
    assert suggest.edit_distance("python", "banana", limit=2) == 3


def test_it_prefers_the_closest_then_the_most_common_word():
    vocabulary = [("pythons", 40), ("python", 30), ("pylon", 90), ("typhoon", 5)]
    # python is one edit away; pylon and pythons two, the more common first; typhoon too far.
    assert suggest.corrections("pythn", 0, vocabulary) == ["python", "pylon", "pythons"]


def test_it_leaves_a_word_the_library_has_often_enough():
    assert suggest.corrections("snake", 12, [("snakes", 400)]) == []
    assert suggest.corrections("snaek", 1, [("snake", 400)]) == ["snake"]  # rare, and a common neighbour


@pytest.mark.django_db
class TestWithTheLibrary:
    @pytest.fixture(autouse=True)
    def collection(self):
        self.name = f"suggest-{uuid.uuid4().hex[:8]}"
        bodies = [f"Ball pythons are calm snakes; python care guide number {i}." for i in range(6)]
        bodies += [f"Savings accounts and interest, note {i}." for i in range(4)]
        bodies += [f"小米粥的营养价值很高，第{i}篇。" for i in range(4)]
        documents_import(items=[DocumentInput(title="", body=body) for body in bodies], collection=self.name)

    def suggestion(self, query: str) -> str | None:
        return get_backend().suggest(parse(query), collection=self.name)

    def test_it_corrects_misspelt_english_words_as_the_library_spells_them(self):
        assert self.suggestion("pythn snake") == "python snake"
        assert self.suggestion("savngs acounts") == "savings accounts"

    def test_it_suggests_nothing_for_a_query_it_knows(self):
        assert self.suggestion("python care") is None
        assert self.suggestion('"pythn snake"') is None  # a phrase is taken as typed

    def test_it_corrects_one_character_of_a_chinese_word(self):
        assert self.suggestion("小米粥的营乔") == "小米粥的营养"
