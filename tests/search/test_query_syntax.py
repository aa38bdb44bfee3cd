"""Web-search syntax keeps its meaning: phrases required, -exclusions, OR, hyphens, stop words, Chinese."""

from __future__ import annotations

import uuid

import pytest

from documents.services import DocumentInput, document_create
from search.backends import find_candidates
from search.query import Clause, parse

pytestmark = pytest.mark.django_db


@pytest.fixture
def collection() -> str:
    return f"syntax-{uuid.uuid4().hex[:8]}"


def add(collection: str, title: str, body: str) -> int:
    return document_create(item=DocumentInput(title=title, body=body), collection=collection).document.pk


def ids(query: str, collection: str) -> list[int]:
    return [c.document_id for c in find_candidates(query, k=20, collection=collection).candidates]


# --- parsing (no database) ---------------------------------------------------------------------


def test_it_parses_words_phrases_exclusions_and_or_groups():
    parsed = parse('apple "red fuji" -iphone -"apple watch" pie OR "tarte tatin"')
    assert parsed.scored == [
        Clause("apple"),
        Clause("red fuji", phrase=True),
        Clause("pie"),
        Clause("tarte tatin", phrase=True),
    ]
    assert parsed.excluded == [Clause("iphone"), Clause("apple watch", phrase=True)]
    assert parsed.required == [[Clause("red fuji", phrase=True)], [Clause("pie"), Clause("tarte tatin", phrase=True)]]


@pytest.mark.parametrize("query", ["", "   ", '""', '"', "OR", "- OR -", "|"])
def test_it_parses_a_query_without_terms_as_empty(query):
    assert not parse(query)


# --- meaning ------------------------------------------------------------------------------------


def test_it_ranks_a_plain_query_as_a_disjunction(collection):
    both = add(collection, "Heat pumps", "A heat pump moves heat with a refrigerant.")
    one = add(collection, "Refrigerants", "Old refrigerants harm the ozone layer.")
    add(collection, "Unrelated", "Orbital mechanics of small satellites.")
    assert ids("heat refrigerant", collection) == [both, one]


def test_it_requires_a_quoted_phrase(collection):
    phrase = add(collection, "Heat pumps", "A heat pump moves heat with a refrigerant cycle.")
    add(collection, "Pumps", "A pump for water, and heat from the sun.")
    assert ids('"heat pump"', collection) == [phrase]
    assert ids('"heat pump" water', collection) == [phrase]


def test_it_excludes_words_and_phrases(collection):
    keep = add(collection, "Heat pumps", "A heat pump moves heat with a refrigerant cycle.")
    engine = add(collection, "Heat transfer in engines", "Engines transfer heat to coolant.")
    watch = add(collection, "Apple watch", "The apple watch counts steps.")
    assert ids("heat -engine", collection) == [keep]
    assert ids('heat -"heat pump"', collection) == [engine]
    assert watch not in ids('apple -"apple watch" heat', collection)


def test_it_satisfies_an_or_group_by_any_member(collection):
    pump = add(collection, "Heat pumps", "A heat pump moves heat with a refrigerant cycle.")
    solar = add(collection, "Solar panels", "Solar panels turn light into power.")
    add(collection, "Engines", "Engines burn fuel and waste heat.")
    assert sorted(ids('"heat pump" OR "solar panels"', collection)) == sorted([pump, solar])
    assert sorted(ids('"heat pump" | solar', collection)) == sorted([pump, solar])


def test_it_matches_the_parts_of_a_hyphenated_word(collection):
    phrase = add(collection, "Heat-transfer coefficients", "Heat-transfer in laminar flow over a plate.")
    apart = add(collection, "Cooling fins", "Fins transfer heat away from the engine block.")
    add(collection, "Unrelated", "Orbital mechanics of small satellites.")
    assert ids("heat-transfer", collection) == [phrase, apart]
    assert ids("heat -heat-transfer", collection) == [apart]


def test_it_answers_a_query_of_stop_words_with_a_notice(collection):
    add(collection, "Words", "The words of the text.")
    found = find_candidates("the of and", k=10, collection=collection)
    assert found.candidates == []
    assert found.notices and "too common to search for" in found.notices[0]
    assert find_candidates("🍎", k=10, collection=collection).notices == []
    # Words PostgreSQL reads as markup are not called too common.
    markup = find_candidates("<script>alert(1)</script>", k=10, collection=collection)
    assert markup.candidates == [] and markup.notices and "angle brackets" in markup.notices[0]


def test_it_segments_chinese_queries_the_way_documents_are_segmented(collection):
    fuji = add(collection, "红富士", "山东烟台的红富士苹果口感脆甜，营养价值高。")
    phone = add(collection, "手机", "新款苹果手机的价格。")
    add(collection, "天气", "今天的天气很好，适合散步。")
    # 营养价值 is segmented in search mode on both sides: 营养, 价值 and 营养价值 all meet.
    assert ids("苹果营养价值", collection)[0] == fuji
    assert set(ids("苹果", collection)) == {fuji, phone}
    assert ids("苹果 -手机", collection) == [fuji]
    assert ids('"苹果手机"', collection) == [phone]
    assert ids('"富士苹果"', collection) == [fuji]


def test_it_searches_mixed_chinese_and_english(collection):
    mixed = add(collection, "Python 入门", "用 Python 写一个简单的爬虫程序。")
    add(collection, "爬山", "周末去爬山。")
    add(collection, "Python snakes", "Pythons are large snakes.")
    assert ids("python 爬虫", collection)[0] == mixed


def test_it_keeps_only_documents_in_the_languages_asked_for(collection):
    from documents.models import Document

    for title, body in [
        ("苹果", "苹果的营养价值和吃法。"),
        ("Apples", "Apple nutrition facts."),
        ("Apple 苹果", "Apple 苹果"),
    ]:
        add(collection, title, body)
    languages = dict(Document.objects.filter(collection=collection).values_list("id", "language"))
    assert set(languages.values()) == {"zh", "en", "mixed"}
    for asked in (["zh"], ["en"], ["zh", "mixed"]):
        found = find_candidates("apple 苹果", k=10, collection=collection, languages=asked).candidates
        assert {c.document_id for c in found} == {pk for pk, lang in languages.items() if lang in asked}
