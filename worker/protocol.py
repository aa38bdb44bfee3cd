"""The one contract between the web and the rerank worker: task names, the model that serves,
the worker's heartbeat and status, and the typed reply of a rerank.

Shared by the worker's tasks (worker.tasks) and the web's client (search.worker_client, the only
web code that sends work or reads the heartbeat). Plain data: importing it loads neither torch
nor Django, so the web process imports it without the worker's dependencies. Every message is
JSON on the wire (Celery's serializer, the Django cache); `from_message` / `from_dict` turn it
back into these types, dropping keys they do not know and refusing what is not a message.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# --- task names (worker.tasks registers them under these names) -------------------------------

RERANK_TASK = "worker.tasks.rerank"
STATUS_TASK = "worker.tasks.status"
EMBED_TASK = "worker.tasks.embed"
EMBED_QUERY_TASK = "worker.tasks.embed_query"

# Lanes, in the order the worker serves them: a search a person waits for on a result page
# comes before work sent through the API (the library search API and the texts rerank API).
PAGE = "page"
API = "api"
LANES = (PAGE, API)

# What became of a rerank in the worker.
OK = "ok"
SKIPPED = "skipped"  # the model does not serve the query's language
BUSY = "busy"  # turned away at once: the worker's queue (or the API lane's share of it) is full
TIMEOUT = "timeout"  # the caller's budget ran out while it waited for the model
ERROR = "error"  # no model, or the model raised on these texts
STATUSES = (OK, SKIPPED, BUSY, TIMEOUT, ERROR)
# Said by the web's client only: no worker to send to (stale heartbeat, a model still loading) or
# the task queue / result store cannot be reached. No task was answered.
UNAVAILABLE = "unavailable"
REPLY_STATUSES = (*STATUSES, UNAVAILABLE)

# The worker answers this long before the task's expiry (the moment the caller stops waiting), so
# its reply, scored or partly scored, travels back through Redis while the caller still waits.
REPLY_MARGIN_SECONDS = 0.3


def _known(cls: type, payload: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {name: value for name, value in payload.items() if name in names}


# --- the model that serves ------------------------------------------------------------------------


@dataclass
class ModelInfo:
    """What the worker loaded and serves (worker.reranker builds it; the web shows it)."""

    model: str  # what was loaded (hub id, directory or packaged name)
    kind: str  # "cross-encoder" | "bi-encoder"
    device: str
    dtype: str
    max_length: int
    load_seconds: float
    requested: str  # what RERANKER_MODEL asked for
    fallback_reason: str = ""  # why `model` is not `requested`, when it is not
    languages: list[str] | None = None  # query languages it serves; None: all
    label: str = ""  # what it is, in words (shown on the page): e.g. "... bi-encoder, 4-bit weights ..."
    vectors: str = ""  # id of its chunk vectors (model + version) when they are stored, else ""

    @property
    def name(self) -> str:
        """Return what the page and the API call it: its label, else its model id."""
        return self.label or self.model

    @property
    def is_fallback(self) -> bool:
        return bool(self.fallback_reason)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: object) -> ModelInfo | None:
        """Return the model info a message (or a stored evaluation run's JSON) carries, else None.

        Runs stored before a field existed lack it: a missing field takes an empty value.
        """
        if isinstance(payload, ModelInfo):
            return payload
        if not isinstance(payload, dict) or not payload.get("model"):
            return None
        known = _known(cls, payload)
        defaults = {"kind": "", "device": "", "dtype": "", "max_length": 0, "load_seconds": 0.0, "requested": ""}
        languages = known.get("languages")
        known["languages"] = list(languages) if isinstance(languages, list | tuple) else None
        return cls(**{**defaults, **known})


# --- what the worker reports: its status task and its heartbeat -------------------------------


@dataclass(frozen=True)
class VectorCounts:
    """A worker's chunk vectors (models that keep them): stored, and texts waiting to be embedded."""

    stored: int = 0
    pending: int = 0

    @classmethod
    def from_dict(cls, payload: object) -> VectorCounts | None:
        return cls(**_known(cls, payload)) if isinstance(payload, dict) else None


@dataclass(frozen=True)
class WorkerStatus:
    """What a worker serves (the status task's answer), or why it serves nothing."""

    ready: bool
    problem: str = ""  # why it serves no model (empty when ready)
    model: ModelInfo | None = None
    vectors: VectorCounts | None = None
    loading: bool = False  # still loading its model: it will serve, not yet
    # The vectors id (ModelInfo.vectors) of the model that embeds chunks and queries for the
    # semantic candidates: the reranker itself when it is a bi-encoder with vectors, else
    # EMBEDDING_MODEL beside a cross-encoder; "" when none does.
    embedder: str = ""

    def as_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, payload: object) -> WorkerStatus:
        """Return the status a task result carries; anything else reads as "not ready"."""
        if not isinstance(payload, dict) or "ready" not in payload:
            return cls(ready=False, problem="unexpected reply")
        return cls(**cls._fields_of(payload))

    @classmethod
    def _fields_of(cls, payload: dict) -> dict[str, Any]:
        known = _known(cls, payload)
        known["ready"] = bool(known.get("ready"))
        known["problem"] = str(known.get("problem") or "")
        known["model"] = ModelInfo.from_dict(known.get("model"))
        known["vectors"] = VectorCounts.from_dict(known.get("vectors"))
        known["embedder"] = str(known.get("embedder") or "")
        return known


# Every worker writes its heartbeat under HEARTBEAT_PREFIX + its queue every HEARTBEAT_SECONDS;
# one older than HEARTBEAT_FRESH_SECONDS (three beats missed) means no worker serves the queue.
# A beat is kept a day, so that a worker known to be gone stays known (the web then sends it nothing).
HEARTBEAT_PREFIX = "rerank:worker:"
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_FRESH_SECONDS = 6.0
HEARTBEAT_KEEP_SECONDS = 86_400


@dataclass(frozen=True)
class Heartbeat(WorkerStatus):
    """A worker's report, written to Redis (the Django cache) every HEARTBEAT_SECONDS."""

    at: float = 0.0  # time.time() on the worker when written
    worker: str = ""  # host:pid
    queued_pairs: int = 0  # pairs waiting in its batching queue

    @staticmethod
    def key(queue: str) -> str:
        """Return the cache key under which the workers of `queue` report in."""
        return f"{HEARTBEAT_PREFIX}{queue}"

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.at)

    def is_fresh(self, now: float | None = None) -> bool:
        """Return whether a worker wrote this recently enough to be taken as alive (the one rule)."""
        return (time.time() if now is None else now) - self.at <= HEARTBEAT_FRESH_SECONDS

    @classmethod
    def from_message(cls, payload: object) -> Heartbeat | None:
        """Return the heartbeat a cache value holds, None for anything else."""
        if not isinstance(payload, dict) or "ready" not in payload:
            return None
        known = cls._fields_of(payload)
        try:
            known["at"] = float(known.get("at") or 0.0)
            known["queued_pairs"] = int(known.get("queued_pairs") or 0)
        except (TypeError, ValueError):
            return None
        return cls(**known)

    @classmethod
    def fresh(cls, payload: object, now: float | None = None) -> Heartbeat | None:
        """Return the heartbeat a cache value holds when it is fresh, else None (no worker)."""
        beat = cls.from_message(payload)
        return beat if beat is not None and beat.is_fresh(now) else None


# --- the reply of a rerank ------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorUse:
    """How a rerank by a model with chunk vectors found its texts' vectors."""

    stored: int = 0  # read from the store
    embedded: int = 0  # embedded on the spot, within the budget
    missing: int = 0  # neither: their groups are unscored, the texts queued for the background

    @classmethod
    def from_dict(cls, payload: object) -> VectorUse | None:
        return cls(**_known(cls, payload)) if isinstance(payload, dict) else None


@dataclass
class WorkerReply:
    """A rerank's answer: a status, why (for every status but ok), and the scores when ok.

    The worker sends the first fields; the web's client (search.worker_client) fills the last
    ones (`notice`, `total_ms`, `cached`), and makes replies of its own for what never reached a
    worker (UNAVAILABLE) or did not come back in time (TIMEOUT).
    """

    status: str
    reason: str = ""
    scores: list[float | None] = field(default_factory=list)  # one per group; None: no score in time
    best: list[int] = field(default_factory=list)  # index of the winning text in each group
    unscored: list[int] = field(default_factory=list)  # groups without a score (no chunk vector in time)
    model: ModelInfo | None = None  # what served it
    vectors: VectorUse | None = None  # models with chunk vectors only
    queue_ms: float | None = None  # in Redis, then in the batching queue, before the model started on it
    model_ms: float | None = None
    pairs: int = 0
    batched_with: int | None = None  # other searches that shared its window
    # Filled by the web's client.
    notice: str = ""  # the sentence the page and the API show when there are no scores
    total_ms: float = 0.0  # the whole call, as the web waited for it
    cached: int = 0  # groups answered from the rerank cache (search.rerank_cache)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_message(self) -> dict:
        """Return the reply as the task's JSON result."""
        return asdict(self)

    @classmethod
    def from_message(cls, payload: object) -> WorkerReply:
        """Return the reply a task result carries; raises ValueError for anything else."""
        if not isinstance(payload, dict) or payload.get("status") not in STATUSES:
            raise ValueError(f"not a rerank reply: {type(payload).__name__}")
        reply = cls(**_known(cls, payload))
        reply.model = ModelInfo.from_dict(reply.model)
        reply.vectors = VectorUse.from_dict(reply.vectors)
        if reply.status == OK and len(reply.best) != len(reply.scores):
            raise ValueError("a rerank reply whose scores and best indexes differ in length")
        return reply


@dataclass
class QueryVector:
    """The embed_query task's answer: the query's vector by the embedding model `model` (its
    vectors id), or why there is none (`skipped`)."""

    model: str = ""
    vector: list[float] = field(default_factory=list)
    ms: float = 0.0
    skipped: str = ""

    def as_message(self) -> dict:
        return asdict(self)

    @classmethod
    def from_message(cls, payload: object) -> QueryVector:
        if not isinstance(payload, dict):
            return cls(skipped=f"unexpected reply: {type(payload).__name__}")
        reply = cls(**_known(cls, payload))
        if not reply.skipped and (not reply.model or not reply.vector):
            reply.skipped = "a reply without a vector"
        return reply


def passage_text(title: str, chunk_text: str) -> str:
    """Return the text embedded and reranked for one chunk: the title gives every chunk its context.

    Here so that the web (search.passages) and the worker's background embedding (worker.chunk_store)
    read a chunk as the same text, hence under the same key.
    """
    return f"{title}\n{chunk_text}"


def text_key(text: str) -> str:
    """Return the key of a text's chunk vector: sha256 of its UTF-8 bytes (hex)."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()
