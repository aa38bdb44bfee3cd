"""Phrase queries (quotes, hyphenated words) fill up with documents that have the words apart."""

import pytest

from documents.services import DocumentInput, document_create
from search.fulltext import candidates

pytestmark = pytest.mark.django_db
COLLECTION = "test-phrases"


def add(title: str, body: str) -> int:
    return document_create(item=DocumentInput(title=title, body=body), collection=COLLECTION).document.pk


def test_it_finds_the_words_of_a_hyphenated_query_apart_after_the_phrase():
    phrase = add("Heat-transfer coefficients", "Heat-transfer in laminar flow over a plate.")
    apart = add("Cooling fins", "Fins transfer heat away from the engine block.")
    add("Unrelated", "Orbital mechanics of small satellites.")
    found = candidates("heat-transfer", k_initial=10, collection=COLLECTION).candidates
    ids = [c.document_id for c in found]
    assert ids[:2] == [phrase, apart]
    assert [c.all_terms for c in found] == [True, False]


def test_it_keeps_exclusions_strict_when_relaxing():
    keep = add("Heat pumps", "A heat pump moves heat with a refrigerant cycle.")
    add("Heat transfer in engines", "Engines transfer heat to coolant.")
    found = candidates('"heat pump" -engine', k_initial=10, collection=COLLECTION).candidates
    assert [c.document_id for c in found] == [keep]
