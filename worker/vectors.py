"""Chunk vectors of a bi-encoder (packaged-e5-fp32, packaged-e5), computed once and kept on the worker's disk.

A vector is keyed by (model, sha256 of the exact text the model reads): an edited chunk, a new
title or another model has another key, so a stale vector is never found. The store is one
SQLite file (RERANKER_VECTORS_PATH, WAL mode): it outlives worker restarts, several worker
processes may share it, and the worker needs no Django models.

Texts to embed arrive from the web's index hook (search.vectors) as `worker.tasks.embed` tasks;
the task only records them as pending (milliseconds, so searches queued behind it in Redis do not
wait), and the batching thread embeds pending texts while no search is waiting, a few at a time.
At search time `ChunkVectors.score` embeds the query once, reads the candidates' vectors, embeds
on the spot the ones still missing while the caller's deadline allows, and reports the rest.

A deleted or edited document's old vectors are never read again, but they stay until pruned:
`manage.py prune_vectors` names every live chunk text's key (`keep`), then `prune` deletes this
model's vectors and pending texts that were not named and were stored before the pass began.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.protocol import text_key

logger = logging.getLogger(__name__)

# Seconds of background embedding per step: a search that arrives meanwhile waits for this step
# at most. The step takes as many pending texts as the measured cost per text allows (at least 1).
BACKGROUND_STEP_SECONDS = 0.25
BACKGROUND_STEP_MAX_TEXTS = 16
# Texts embedded together on the spot, between two looks at the deadline (and, for API work, at
# waiting page searches): at most this many, and fewer when they are long (about the characters of
# two full 512-token passages), so a step stays well under a page search's budget.
ON_THE_SPOT_STEP_TEXTS = 4
ON_THE_SPOT_STEP_CHARS = 4_000
# First guess of the seconds one passage takes, until the worker has measured its own.
INITIAL_SECONDS_PER_TEXT = 0.15
# Kept free before the caller's deadline for the reply's trip back.
DEADLINE_MARGIN_SECONDS = 0.15
# Texts the API lane (search.reranking's rerank APIs) may leave pending at most (one request's
# worth): its texts are embedded in the background only after the library's, and a client that
# floods the API with new texts leaves the worker minutes of work after it, never hours.
MAX_PENDING_API_TEXTS = 200
# Where a pending text came from: the library's chunks come first.
LIBRARY, API_TEXTS = 0, 1
# Seconds between two progress lines in the worker log while pending texts are embedded.
PROGRESS_LOG_SECONDS = 10.0
# Seconds after which the keys of a prune pass that never finished are cleared.
STALE_PASS_SECONDS = 86_400.0
# SQLite caps bound parameters per statement; lookups go in slices of this many keys.
SQL_KEYS_PER_STATEMENT = 500


def on_the_spot_step(order: list[int], texts: list[str]) -> list[int]:
    """Return the next step of `order`: at least one text, at most ON_THE_SPOT_STEP_TEXTS and
    (past the first) ON_THE_SPOT_STEP_CHARS characters."""
    step, chars = [], 0
    for i in order[:ON_THE_SPOT_STEP_TEXTS]:
        if step and chars + len(texts[i]) > ON_THE_SPOT_STEP_CHARS:
            break
        step.append(i)
        chars += len(texts[i])
    return step


@dataclass
class VectorScores:
    scores: list[float | None]  # one per text; None: no vector, and none could be made in time
    stored: int  # texts whose vector was found in the store
    embedded: int  # texts embedded on the spot (now stored too)
    missing: int  # texts left without a score


class ChunkVectors:
    """The vector store of one model, and the scoring that reads it."""

    def __init__(
        self, path: str | Path, *, model_id: str, encoder: object, dimension: int, on_the_spot_texts: int = 10_000
    ) -> None:
        self.path = Path(path)
        self.on_the_spot_texts = on_the_spot_texts  # texts one search may embed at most (0: none)
        self.model_id = model_id
        self.encoder = encoder  # has queries(texts) and passages(texts) -> (n, d) float32 arrays
        self.dimension = dimension
        self.seconds_per_text = INITIAL_SECONDS_PER_TEXT
        self.embedded_in_background = 0
        self._local = threading.local()
        self._progress_at = 0.0
        self._progress_count = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, key TEXT NOT NULL, vector BLOB NOT NULL, "
                "PRIMARY KEY (model, key)) WITHOUT ROWID"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS pending (model TEXT NOT NULL, key TEXT NOT NULL, text TEXT NOT NULL, "
                "queued REAL NOT NULL, source INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (model, key))"
            )
            columns = {row[1] for row in db.execute("PRAGMA table_info(pending)")}
            if "source" not in columns:  # a store made before pending texts had a source
                db.execute("ALTER TABLE pending ADD COLUMN source INTEGER NOT NULL DEFAULT 0")
            columns = {row[1] for row in db.execute("PRAGMA table_info(vectors)")}
            if "stored" not in columns:  # a store made before vectors had a time: all prunable
                db.execute("ALTER TABLE vectors ADD COLUMN stored REAL NOT NULL DEFAULT 0")
            # The keys a prune pass keeps (`token`: one pass), with when the pass named them.
            db.execute(
                "CREATE TABLE IF NOT EXISTS keep (token TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL, "
                "PRIMARY KEY (token, key)) WITHOUT ROWID"
            )

    def _db(self) -> sqlite3.Connection:
        """Return this thread's connection (SQLite connections are not shared between threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    # --- the store --------------------------------------------------------------------------

    def lookup(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Return the stored vector of each key that has one (one statement per 500 keys)."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        db = self._db()
        for start in range(0, len(unique), SQL_KEYS_PER_STATEMENT):
            part = unique[start : start + SQL_KEYS_PER_STATEMENT]
            marks = ",".join("?" * len(part))
            rows = db.execute(
                f"SELECT key, vector FROM vectors WHERE model = ? AND key IN ({marks})",  # noqa: S608 - marks only
                [self.model_id, *part],
            )
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def store(self, keys: list[str], vectors: np.ndarray) -> None:
        now = time.time()
        rows = [
            (self.model_id, key, np.ascontiguousarray(v, dtype=np.float32).tobytes(), now)
            for key, v in zip(keys, vectors, strict=True)
        ]
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO vectors (model, key, vector, stored) VALUES (?, ?, ?, ?)", rows)
            db.executemany("DELETE FROM pending WHERE model = ? AND key = ?", [(self.model_id, key) for key in keys])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def counts(self) -> dict[str, int]:
        """Return how many vectors this model has stored and how many texts wait to be embedded."""
        db = self._db()
        stored = db.execute("SELECT count(*) FROM vectors WHERE model = ?", [self.model_id]).fetchone()[0]
        pending = db.execute("SELECT count(*) FROM pending WHERE model = ?", [self.model_id]).fetchone()[0]
        return {"stored": stored, "pending": pending}

    # --- pruning the vectors of texts no document has any more --------------------------------

    def keep(self, token: str, keys: list[str]) -> int:
        """Record `keys` as live for the prune pass `token`; return how many were recorded."""
        now = time.time()
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            # A pass that never finished (its command stopped) leaves rows: cleared after a day.
            db.execute("DELETE FROM keep WHERE at < ? AND token != ?", [now - STALE_PASS_SECONDS, token])
            rows = [(token, key, now) for key in keys]
            db.executemany("INSERT OR IGNORE INTO keep (token, key, at) VALUES (?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(keys)

    def prune(self, token: str, *, since: float) -> dict[str, int]:
        """Delete this model's vectors and library texts pending that pass `token` did not keep and
        that were stored (queued) before `since`, the pass's start: a document written during the
        pass keeps its new vectors. Returns how many of each were removed and how many vectors are left.
        """
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            vectors = db.execute(
                "DELETE FROM vectors WHERE model = ? AND stored < ? "
                "AND key NOT IN (SELECT key FROM keep WHERE token = ?)",
                [self.model_id, since, token],
            ).rowcount
            pending = db.execute(
                "DELETE FROM pending WHERE model = ? AND source = ? AND queued < ? "
                "AND key NOT IN (SELECT key FROM keep WHERE token = ?)",
                [self.model_id, LIBRARY, since, token],
            ).rowcount
            db.execute("DELETE FROM keep WHERE token = ?", [token])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return {"vectors_removed": vectors, "pending_removed": pending, **self.counts()}

    # --- pending texts (background) ---------------------------------------------------------

    def queue(self, texts: list[str], *, source: int = LIBRARY) -> int:
        """Record the texts without a vector as pending; return how many were new (one transaction).

        Texts of the API lane (`source` API_TEXTS) are kept only up to MAX_PENDING_API_TEXTS.
        """
        by_key = {text_key(text): text for text in texts}
        have = self.lookup(list(by_key))
        now = time.time()
        fresh = [(self.model_id, key, text, now, source) for key, text in by_key.items() if key not in have]
        if not fresh:
            return 0
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            if source == API_TEXTS:
                waiting = db.execute(
                    "SELECT count(*) FROM pending WHERE model = ? AND source = ?", [self.model_id, API_TEXTS]
                ).fetchone()[0]
                fresh = fresh[: max(0, MAX_PENDING_API_TEXTS - waiting)]
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO pending (model, key, text, queued, source) VALUES (?, ?, ?, ?, ?)", fresh
            )
            added = db.total_changes - before
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return added

    def embed_pending(self, limit: int | None = None) -> bool:
        """Embed and store a step of pending texts, the library's first, then oldest first; return
        whether more remain."""
        if limit is None:
            limit = max(1, min(BACKGROUND_STEP_MAX_TEXTS, int(BACKGROUND_STEP_SECONDS / self.seconds_per_text)))
        rows = (
            self._db()
            .execute(
                "SELECT key, text FROM pending WHERE model = ? ORDER BY source, queued LIMIT ?",
                [self.model_id, limit + 1],
            )
            .fetchall()
        )
        if not rows:
            return False
        step = rows[:limit]
        self._embed_and_store([key for key, _ in step], [text for _, text in step])
        self.embedded_in_background += len(step)
        self._log_progress(len(step), done=len(rows) <= limit)
        return len(rows) > limit

    def _log_progress(self, count: int, *, done: bool) -> None:
        self._progress_count += count
        now = time.monotonic()
        if not self._progress_at:
            self._progress_at = now
            return
        if done or now - self._progress_at >= PROGRESS_LOG_SECONDS:
            rate = self._progress_count / max(now - self._progress_at, 1e-6)
            pending = self.counts()["pending"]
            logger.info(
                "chunk vectors (%s): %d embedded in the background, %d pending (%.1f texts/s)",
                self.model_id,
                self.embedded_in_background,
                pending,
                rate,
            )
            self._progress_at, self._progress_count = (0.0, 0) if done else (now, 0)

    def _embed_and_store(self, keys: list[str], texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = np.asarray(self.encoder.passages(texts), dtype=np.float32)
        elapsed = time.perf_counter() - started
        # A running average of the cost of one text: what the on-the-spot budget is planned with.
        self.seconds_per_text = 0.7 * self.seconds_per_text + 0.3 * (elapsed / max(1, len(texts)))
        self.store(keys, vectors)
        return vectors

    # --- search time ------------------------------------------------------------------------

    def score(
        self,
        query: str,
        texts: list[str],
        *,
        deadline: float,
        first_of_group: list[bool] | None = None,
        between_steps: Callable[[], None] | None = None,
        source: int = LIBRARY,
    ) -> VectorScores:
        """Return each text's cosine with the query: stored vectors, else embedded now while
        `deadline` (monotonic) allows; texts marked `first_of_group` are embedded first, so each
        document gets a score before any gets a second chunk. `between_steps` runs before each
        on-the-spot step after the first (the batching thread serves waiting page searches there).
        Texts left without a vector are queued for the background as coming from `source`.
        """
        keys = [text_key(text) for text in texts]
        found = self.lookup(keys)
        query_vector = np.asarray(self.encoder.queries([query]), dtype=np.float32)[0]
        stored = sum(1 for key in keys if key in found)
        missing = list(dict.fromkeys(i for i, key in enumerate(keys) if key not in found))
        # Distinct missing texts, first chunks first.
        order: list[int] = []
        seen: set[str] = set()
        firsts = first_of_group or [True] * len(texts)
        for i in sorted(missing, key=lambda i: (not firsts[i], i)):
            if keys[i] not in seen:
                seen.add(keys[i])
                order.append(i)
        embedded = 0
        position = 0
        while position < min(len(order), self.on_the_spot_texts):
            step = on_the_spot_step(order[position : self.on_the_spot_texts], texts)
            if between_steps is not None and position:
                between_steps()
            if time.monotonic() + self.seconds_per_text * len(step) + DEADLINE_MARGIN_SECONDS > deadline:
                break
            vectors = self._embed_and_store([keys[i] for i in step], [texts[i] for i in step])
            for i, vector in zip(step, vectors, strict=True):
                found[keys[i]] = vector
            embedded += len(step)
            position += len(step)
        scores: list[float | None] = []
        for key in keys:
            vector = found.get(key)
            scores.append(None if vector is None else float(vector @ query_vector))
        left = sum(1 for s in scores if s is None)
        if left:
            # What was not embedded in time is embedded in the background, for the next search.
            self.queue([texts[i] for i in order[position:]], source=source)
        return VectorScores(scores=scores, stored=stored, embedded=embedded, missing=left)
