"""What the web and the rerank worker send each other: the lanes of a rerank, and its typed reply.

Shared by the worker's task (worker.tasks), the web's client (search.worker_client) and, through
that client, evaluation. Plain data: importing it loads neither torch nor Django, so the web
process imports it without the worker's dependencies.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields

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


@dataclass
class WorkerReply:
    """The rerank task's answer: a status, why (for every status but ok), and the scores when ok."""

    status: str
    reason: str = ""
    scores: list[float | None] = field(default_factory=list)  # one per group; None: no score in time
    best: list[int] = field(default_factory=list)  # index of the winning text in each group
    unscored: list[int] = field(default_factory=list)  # groups without a score (no chunk vector in time)
    model: dict | None = None  # what served it (worker.reranker.ModelInfo.as_dict)
    vectors: dict | None = None  # chunk vectors: stored / embedded on the spot / missing
    queue_ms: float | None = None  # in Redis, then in the batching queue, before the model started on it
    model_ms: float | None = None
    pairs: int = 0
    batched_with: int | None = None  # other searches that shared its window

    def as_message(self) -> dict:
        """Return the reply as the task's JSON result."""
        return asdict(self)

    @classmethod
    def from_message(cls, payload: object) -> WorkerReply:
        """Return the reply a task result carries; raises ValueError for anything else."""
        if not isinstance(payload, dict) or payload.get("status") not in STATUSES:
            raise ValueError(f"not a rerank reply: {type(payload).__name__}")
        known = {f.name for f in fields(cls)}
        reply = cls(**{name: value for name, value in payload.items() if name in known})
        if reply.status == OK and len(reply.best) != len(reply.scores):
            raise ValueError("a rerank reply whose scores and best indexes differ in length")
        return reply


def text_key(text: str) -> str:
    """Return the key of a text's chunk vector: sha256 of its UTF-8 bytes (hex).

    Here so that the web (`prune_vectors`) names a chunk's vector exactly as the worker stores it.
    """
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()
