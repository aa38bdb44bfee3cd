"""Several common terms are scored from packed postings, and the top k is the exhaustive BM25 top k,
to the last bit of every score, before and after documents are written since the packs."""

from __future__ import annotations

import random
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from documents.models import Document
from documents.services import DocumentInput, document_create, document_update, documents_delete, documents_import
from search.backends import get_backend
from search.backends.packed import PackMissing
from search.query import parse
from tests.support.bm25_packs import COMMON, changes, exhaustive, ranked, uses_packs

pytestmark = pytest.mark.django_db

QUERIES = [
    "apple river",
    "river stone lantern",
    "apple stone marble",  # marble: a rare word beside two common ones
    "apple marble number7",  # one common word: its pack beats a lookup in each rare word's document
    "apple river -stone",
    '"apple river" stone',
    "apple OR lantern",
    "苹果 河流",
]


@pytest.fixture
def collection(settings) -> str:
    """300 documents where four English and two Chinese words are common (in titles or bodies, at
    varied counts and lengths), and a rare word in a few; the common words' postings are packed."""
    settings.SEARCH_EXHAUSTIVE_POSTINGS = 60
    settings.SEARCH_COMMON_TERM_POOL = 10
    settings.SEARCH_PACK_MIN_DF = 40
    name = f"packs-{uuid.uuid4().hex[:8]}"
    rng = random.Random(7)
    items = []
    for i in range(300):
        if i % 3 == 0:
            body = " ".join(rng.choice(["苹果", "河流", "石头", "天气", "我们"]) for _ in range(rng.randint(3, 30)))
            items.append(DocumentInput(title=f"文档 {rng.choice(['苹果', '河流', '山'])}", body=body, language="zh"))
            continue
        words = [rng.choice([*COMMON, "filler", "meadow", "cloud"]) for _ in range(rng.randint(4, 60))]
        if i in (11, 42, 133):
            words.append("marble")
        title = " ".join(rng.sample([*COMMON, "notes", "about"], rng.randint(1, 3)))
        items.append(DocumentInput(title=title, body=" ".join(words) + f" number{i}."))
    documents_import(items=items, collection=name)
    packed = get_backend().pack(collection=name)
    assert packed[name] >= 4  # the common words, in 40 or more documents each
    return name


@pytest.mark.parametrize("query", QUERIES)
def test_several_common_terms_are_scored_from_packs_exactly(collection, settings, query):
    assert uses_packs(query, collection)
    found = ranked(query, collection)
    assert len(found) == 10
    assert found == exhaustive(query, collection, settings)


def test_a_single_common_term_keeps_its_pool_not_the_packs(collection):
    assert not uses_packs("apple", collection)
    assert not uses_packs("marble", collection)


def test_a_language_filter_applies_to_packed_scores(collection, settings):
    found = ranked("apple river", collection, languages=["zh"])
    assert found == exhaustive("apple river", collection, settings, languages=["zh"])
    # Only Chinese documents, and none of them holds the English words: nothing is found.
    assert found == []
    chinese = ranked("苹果 河流", collection, languages=["zh"])
    assert chinese and chinese == exhaustive("苹果 河流", collection, settings, languages=["zh"])


def test_documents_written_since_the_packs_are_read_live(collection, settings):
    # A new document that wins "apple river", an edit that takes the words out of the best one,
    # a deleted document, a document moved out of the collection: all after the packs were taken.
    before = ranked("apple river", collection)
    new = document_create(
        item=DocumentInput(title="apple river", body="apple river apple river"), collection=collection
    ).document
    edited = Document.objects.get(pk=before[0][0])
    document_update(document=edited, title="notes", body="meadow cloud filler")
    documents_delete(documents=Document.objects.filter(pk=before[1][0]))
    Document.objects.filter(pk=before[2][0]).update(collection=f"{collection}-elsewhere")
    assert changes(collection) >= 4

    assert uses_packs("apple river", collection)
    after = ranked("apple river", collection)
    ids = [pk for pk, _ in after]
    assert ids[0] == new.pk
    assert not {before[0][0], before[1][0], before[2][0]} & set(ids)
    for query in QUERIES:
        assert ranked(query, collection) == exhaustive(query, collection, settings), query


def test_too_many_changes_leave_the_packs_unused_until_taken_again(collection, settings):
    settings.SEARCH_PACK_CHANGES = 3
    items = [DocumentInput(title="apple", body=f"river stone {i}") for i in range(5)]
    documents_import(items=items, collection=collection)
    assert not uses_packs("apple river", collection)
    assert ranked("apple river", collection) == exhaustive("apple river", collection, settings)

    out = StringIO()
    call_command("pack_postings", collection=collection, stdout=out)
    assert f"{collection}: " in out.getvalue()
    assert changes(collection) == 0
    assert uses_packs("apple river", collection)
    assert ranked("apple river", collection) == exhaustive("apple river", collection, settings)


def test_reindexing_takes_the_packs_again_for_the_new_term_ids(collection, settings):
    call_command("reindex_documents", collection=collection, stdout=StringIO(), stderr=StringIO())
    assert changes(collection) == 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM search_bm25_pack k LEFT JOIN search_bm25_term t ON t.id = k.term_id "
            "WHERE t.id IS NULL OR t.df < 40"
        )
        assert cursor.fetchone()[0] == 0  # no pack of a term that is gone
    assert uses_packs("river stone lantern", collection)
    query = "river stone lantern"
    assert ranked(query, collection) == exhaustive(query, collection, settings)


def test_packs_gone_between_plan_and_read_are_noticed(collection, settings):
    backend = get_backend()
    plan = backend._plan(parse("apple river"), k=10, collection=collection)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM search_bm25_pack")
    with pytest.raises(PackMissing):
        backend._from_packs(plan, k=10)
    # A search at that moment plans again without packs: the same exact answer.
    assert ranked("apple river", collection) == exhaustive("apple river", collection, settings)


def test_collections_without_packs_log_no_changes(settings):
    name = f"unpacked-{uuid.uuid4().hex[:8]}"
    document_create(item=DocumentInput(title="apple", body="river"), collection=name)
    assert changes(name) == 0
