"""Chunk vectors of a bi-encoder (packaged-e5-fp32, packaged-e5), computed once and shared through PostgreSQL.

A library chunk's vector lives in PostgreSQL (worker.chunk_store: search_chunkvector, one row per
chunk and model, removed with its chunk by ON DELETE CASCADE), so any number of workers share it
and no stale or orphan vector is left. The worker writes it in plain SQL (no Django model).
Texts that are no library chunk (the texts rerank API's, a title-only document) keep their
vectors in a local SQLite file (RERANKER_VECTORS_PATH, keyed by model and the text's sha256, at
most MAX_LOOSE_VECTORS, the oldest dropped first).

The index hook (search.vectors) sends an `embed` task when documents are written; the batching
thread then embeds the chunks PostgreSQL has no vector of yet while no search is waiting, a few
at a time. Vectors of a store made before PostgreSQL kept them (the SQLite file of an existing
`.data/`) are carried over on the way: a chunk whose text has a vector there is copied, not
embedded again. At search time `ChunkVectors.score` takes the query's vector when the caller
has it (embedded once, for the semantic candidates) or embeds the query, reads the candidates'
vectors, embeds on the spot the ones still missing while the caller's deadline allows, and
reports the rest.
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

from worker import chunk_store
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
# Vectors of loose texts (not library chunks: API texts) the SQLite file keeps at most.
MAX_LOOSE_VECTORS = 100_000
# Seconds between two counts of PostgreSQL's vectors (the heartbeat reads them every 2 s).
COUNTS_SECONDS = 10.0
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
        self,
        path: str | Path,
        *,
        model_id: str,
        encoder: object,
        dimension: int,
        on_the_spot_texts: int = 10_000,
        database: object | None = None,
    ) -> None:
        self.path = Path(path)
        # A DB-API connection to the site's PostgreSQL (the worker passes Django's, one per
        # thread); None: no library chunks, loose texts only (some unit tests).
        self.database = database
        self._counts: tuple[float, dict[str, int]] | None = None
        self._encode_lock = threading.Lock()  # the batching thread and embed_query tasks share the model
        self.carried_over = 0
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
        """Keep loose texts' vectors in the SQLite file (at most MAX_LOOSE_VECTORS, oldest dropped)."""
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
            over = db.execute("SELECT count(*) FROM vectors WHERE model = ?", [self.model_id]).fetchone()[0]
            if over > MAX_LOOSE_VECTORS:
                db.execute(
                    "DELETE FROM vectors WHERE model = ? AND key IN "
                    "(SELECT key FROM vectors WHERE model = ? ORDER BY stored LIMIT ?)",
                    [self.model_id, self.model_id, over - MAX_LOOSE_VECTORS],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def counts(self) -> dict[str, int]:
        """Return this model's vectors stored and texts waiting: library chunks in PostgreSQL
        (counted at most every COUNTS_SECONDS) plus the loose texts of the SQLite file."""
        db = self._db()
        stored = db.execute("SELECT count(*) FROM vectors WHERE model = ?", [self.model_id]).fetchone()[0]
        pending = db.execute("SELECT count(*) FROM pending WHERE model = ?", [self.model_id]).fetchone()[0]
        library = self.library_counts()
        return {"stored": stored + library["stored"], "pending": pending + library["pending"]}

    def library_counts(self, *, fresh: bool = False) -> dict[str, int]:
        """Return the library chunks' vectors of this model in PostgreSQL and the chunks without one."""
        if self.database is None:
            return {"stored": 0, "pending": 0}
        now = time.monotonic()
        if fresh or self._counts is None or now - self._counts[0] > COUNTS_SECONDS:
            try:
                self._counts = (now, chunk_store.counts(self.database, self.model_id))
            except Exception as error:  # PostgreSQL away: the last counts stand
                self._database_trouble("counting", error)
                return self._counts[1] if self._counts else {"stored": 0, "pending": 0}
        return self._counts[1]

    def _database_trouble(self, doing: str, error: Exception) -> None:
        logger.warning("chunk vectors: PostgreSQL failed while %s (%s: %s)", doing, type(error).__name__, error)
        close = getattr(self.database, "close", None)
        if close is not None:
            try:
                close()  # the next statement opens a new connection
            except Exception:
                logger.debug("chunk vectors: closing the connection failed", exc_info=True)

    # --- library chunks in PostgreSQL ---------------------------------------------------------

    def chunk_lookup(self, chunk_ids: list[int], keys: list[str]) -> dict[int, np.ndarray]:
        """Return the stored vector of each chunk whose stored key is the key of the text it was
        given for (a vector of another text is never used)."""
        if self.database is None or not chunk_ids:
            return {}
        wanted = dict(zip(chunk_ids, keys, strict=True))
        try:
            found = chunk_store.lookup(self.database, self.model_id, list(wanted))
        except Exception as error:
            self._database_trouble("reading vectors", error)
            return {}
        return {chunk_id: vector for chunk_id, (key, vector) in found.items() if wanted.get(chunk_id) == key}

    def chunk_store(self, rows: list[tuple[int, str, np.ndarray]]) -> int:
        if self.database is None or not rows:
            return 0
        try:
            return chunk_store.store(self.database, self.model_id, rows)
        except Exception as error:
            self._database_trouble("writing vectors", error)
            return 0

    def embed_library_step(self, limit: int) -> tuple[int, bool]:
        """Give up to `limit` chunks without a vector theirs: carried over from the SQLite file when
        it has their text's, else embedded. Returns (chunks done, whether more may remain)."""
        if self.database is None:
            return 0, False
        try:
            # Carried-over vectors cost nothing: look further ahead for them.
            rows = chunk_store.missing(self.database, self.model_id, limit * 8 + 1)
        except Exception as error:
            self._database_trouble("finding chunks without vectors", error)
            return 0, False
        if not rows:
            return 0, False
        old = self.lookup([key for _, key, _ in rows])
        carried = [(chunk_id, key, old[key]) for chunk_id, key, _ in rows if key in old]
        fresh = [row for row in rows if row[1] not in old][:limit]
        if carried:
            self.carried_over += self.chunk_store(carried)
        if fresh:
            vectors = self._embed([text for _, _, text in fresh])
            self.chunk_store([(chunk_id, key, v) for (chunk_id, key, _), v in zip(fresh, vectors, strict=True)])
        self._counts = None
        done = len(carried) + len(fresh)
        return done, len(rows) > done or len(rows) == limit * 8 + 1

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
        """Embed and store a step of pending texts: the library's chunks without a vector in
        PostgreSQL first, then loose texts, oldest first; return whether more remain."""
        if limit is None:
            limit = max(1, min(BACKGROUND_STEP_MAX_TEXTS, int(BACKGROUND_STEP_SECONDS / self.seconds_per_text)))
        done, more = self.embed_library_step(limit)
        if done:
            self.embedded_in_background += done
            self._log_progress(done, done=not more and not self._loose_pending())
            return True
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

    def _loose_pending(self) -> bool:
        row = self._db().execute("SELECT 1 FROM pending WHERE model = ? LIMIT 1", [self.model_id]).fetchone()
        return row is not None

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
                "chunk vectors (%s): %d done in the background (%d carried over from %s), %d pending (%.1f texts/s)",
                self.model_id,
                self.embedded_in_background,
                self.carried_over,
                self.path.name,
                pending,
                rate,
            )
            self._progress_at, self._progress_count = (0.0, 0) if done else (now, 0)

    def _embed(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        with self._encode_lock:
            vectors = np.asarray(self.encoder.passages(texts), dtype=np.float32)
        elapsed = time.perf_counter() - started
        # A running average of the cost of one text: what the on-the-spot budget is planned with.
        self.seconds_per_text = 0.7 * self.seconds_per_text + 0.3 * (elapsed / max(1, len(texts)))
        return vectors

    def _embed_and_store(self, keys: list[str], texts: list[str]) -> np.ndarray:
        vectors = self._embed(texts)
        self.store(keys, vectors)
        return vectors

    def embed_query(self, query: str) -> np.ndarray:
        """Return the query's vector (one forward pass; shares the model with the batching thread)."""
        with self._encode_lock:
            return np.asarray(self.encoder.queries([query]), dtype=np.float32)[0]

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
        chunk_ids: list[int | None] | None = None,
        query_vector: np.ndarray | None = None,
    ) -> VectorScores:
        """Return each text's cosine with the query: stored vectors, else embedded now while
        `deadline` (monotonic) allows; texts marked `first_of_group` are embedded first, so each
        document gets a score before any gets a second chunk. `between_steps` runs before each
        on-the-spot step after the first (the batching thread serves waiting page searches there).
        A text with a `chunk_ids` entry is a library chunk: its vector is read from and written
        to PostgreSQL; the others' from the SQLite file. `query_vector`: the query's vector when
        the caller has it already (it is then not embedded again). Loose texts left without a
        vector are queued for the background as coming from `source`; chunks need no queue.
        """
        keys = [text_key(text) for text in texts]
        ids = list(chunk_ids) if chunk_ids is not None else [None] * len(texts)
        in_library = {i: ids[i] for i in range(len(texts)) if ids[i] is not None}
        by_chunk = self.chunk_lookup([ids[i] for i in in_library], [keys[i] for i in in_library])
        found: dict[str, np.ndarray] = self.lookup([keys[i] for i in range(len(texts)) if i not in in_library])
        for i, chunk_id in in_library.items():
            if chunk_id in by_chunk:
                found[keys[i]] = by_chunk[chunk_id]
        if query_vector is None:
            query_vector = self.embed_query(query)
        query_vector = np.asarray(query_vector, dtype=np.float32)
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
            vectors = self._embed([texts[i] for i in step])
            loose = [(keys[i], v) for i, v in zip(step, vectors, strict=True) if ids[i] is None]
            if loose:
                self.store([key for key, _ in loose], np.asarray([v for _, v in loose]))
            self.chunk_store([(ids[i], keys[i], v) for i, v in zip(step, vectors, strict=True) if ids[i] is not None])
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
            self.queue([texts[i] for i in order[position:] if ids[i] is None], source=source)
        return VectorScores(scores=scores, stored=stored, embedded=embedded, missing=left)
