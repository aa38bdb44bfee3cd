"""The rerank service behind every rerank API shape (Cohere v1 and v2, TEI): one set of limits,
one language rule, one per-client budget; the views only translate shapes."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.http import HttpRequest

from documents.textsearch import detect_language
from search import worker_client
from search.throttling import RerankCharge, rerank_budget_charge, rerank_budget_refund, rerank_budget_spent
from worker.protocol import ModelInfo

logger = logging.getLogger(__name__)

# Documents per call: 200 pairs take the tiny CPU model about a second and a GPU model a tenth of
# that; the rerank budget (RERANK_API_*_PER_MINUTE) then bounds what a client sends in a minute.
MAX_RERANK_DOCUMENTS = 200
# Characters per document: the model reads at most RERANKER_MAX_LENGTH tokens of a pair anyway;
# 20,000 characters is a long article, beyond which the client should chunk it themselves.
MAX_RERANK_TEXT_CHARS = 20_000
# Characters of the query: a question, not a document.
MAX_RERANK_QUERY_CHARS = 2_000
# A busy reranker's queue drains within about one time budget: ask the client to come back then.
BUSY_RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class RankedText:
    index: int  # position in the request's documents
    # The worker's score: sigmoid of the logit (cross-encoder) or a cosine (bi-encoder); None: a
    # bi-encoder could not embed this text within the budget (listed last, see RerankedTexts.unscored).
    score: float | None


@dataclass(frozen=True)
class RerankedTexts:
    ranked: list[RankedText]  # best first, at most top_n
    model: ModelInfo | None  # what served
    unscored: list[int] = field(default_factory=list)  # request positions without a score, in order

    @property
    def notice(self) -> str | None:
        """Return the sentence that explains unscored texts, or None when every text was scored."""
        if not self.unscored:
            return None
        if self.model is not None and self.model.vectors:
            why = "the model embeds each text it has not seen before"
            later = ", and are scored on a later call"
        else:
            why, later = "the reranker ran out of time", ""
        return (
            f"{len(self.unscored)} documents were not scored within the budget ({why}); they are listed last with "
            f"a null score{later}."
        )


class RerankRefused(Exception):
    """The texts were not scored. `reason` says why; each API shape maps it to its status code.

    reasons: too_large (413), language (422), throttled (429), busy, unavailable, error (503),
    timeout (504).
    """

    def __init__(self, message: str, *, reason: str, retry_after: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.retry_after = retry_after
        self.field = field

    @property
    def status_code(self) -> int:
        return REFUSAL_STATUS[self.reason]


REFUSAL_STATUS = {
    "too_large": 413,
    "language": 422,
    "throttled": 429,
    "busy": 503,
    "unavailable": 503,
    "error": 503,
    "timeout": 504,
}


def texts_rerank(*, request: HttpRequest, query: str, texts: list[str], top_n: int | None = None) -> RerankedTexts:
    """Return `texts` ordered by the worker's scores against `query` (network: Redis, the worker).

    Raises RerankRefused past a limit, past the client's budget (search.throttling), for a query
    language the serving model does not rerank (RERANKER_LANGUAGES), or when the worker fails.
    """
    query = query.replace("\x00", "")
    texts = [text.replace("\x00", "") for text in texts]
    started = time.perf_counter()
    try:
        reranked = _rerank(request, query, texts, top_n)
    except RerankRefused as refusal:
        _log_rerank(query, texts, refusal.reason, started, None)
        raise
    _log_rerank(query, texts, "ok", started, reranked.model)
    return reranked


def budget_refusal(request: HttpRequest) -> RerankRefused | None:
    """Return the refusal for a client whose rerank budget is used up already (Redis: one read).

    The views ask before they read the request's body: a client past its budget is answered 429
    without the server decoding the megabytes of JSON it sent.
    """
    decision = rerank_budget_spent(request)
    if decision.allowed:
        return None
    _log_rerank("", [], "throttled", time.perf_counter(), None)  # the body was not read: no sizes
    return RerankRefused(decision.message, reason="throttled", retry_after=decision.retry_after)


def texts_truncate(query: str, texts: list[str], *, keep_start: bool = True) -> tuple[str, list[str]]:
    """Return `query` and `texts` cut to the limits instead of refused (TEI's `truncate`): the query
    keeps its start, each text its start, or with `keep_start=False` its end."""
    query = query[:MAX_RERANK_QUERY_CHARS]
    if keep_start:
        return query, [text[:MAX_RERANK_TEXT_CHARS] for text in texts]
    return query, [text[-MAX_RERANK_TEXT_CHARS:] for text in texts]


def _log_rerank(query: str, texts: list[str], status: str, started: float, model: ModelInfo | None) -> None:
    """Log one line per rerank API call: sizes, outcome, time, model; never the query or texts."""
    rerank_call_log(
        query_chars=len(query),
        documents=len(texts),
        chars=sum(len(text) for text in texts),
        status=status,
        started=started,
        model=model,
    )


def rerank_call_log(
    *, query_chars: int, documents: int, chars: int, status: str, started: float, model: ModelInfo | None = None
) -> None:
    """Log the one line of a rerank API call from its sizes (search.rerank_api logs the calls it
    refuses before any text is built this way): never the query or the texts."""
    logger.info(
        "rerank api: query_chars=%d documents=%d chars=%d status=%s total_ms=%.1f model=%s kind=%s",
        query_chars,
        documents,
        chars,
        status,
        (time.perf_counter() - started) * 1000,
        model.model if model else "-",
        model.kind if model else "-",
    )


def _rerank(request: HttpRequest, query: str, texts: list[str], top_n: int | None) -> RerankedTexts:
    limits_check(count=len(texts), query_chars=len(query), text_chars=[len(text) for text in texts])
    charge = RerankCharge(pairs=len(texts), chars=sum(len(query) + len(text) for text in texts))
    charged_at = time.time()
    decision = rerank_budget_charge(request, charge, now=charged_at)
    if decision.too_large:
        raise RerankRefused(decision.message, reason="too_large", field="documents")
    if not decision.allowed:
        raise RerankRefused(decision.message, reason="throttled", retry_after=decision.retry_after)
    reply = worker_client.rerank(query, [[text] for text in texts], language=detect_language(query))
    if not reply.ok:
        # No scores came back (no worker, busy, timed out, failed, a language it skips): not charged.
        rerank_budget_refund(request, charge, charged_at=charged_at)
    if reply.status == "skipped":
        raise RerankRefused(reply.notice, reason="language", field="query")
    if not reply.ok:
        retry_after = BUSY_RETRY_AFTER_SECONDS if reply.status == "busy" else None
        raise RerankRefused(reply.notice, reason=reply.status, retry_after=retry_after)
    unscored = set(reply.unscored)
    # Texts the model could not score within the budget come last, in request order; never left out.
    scored = sorted((i for i in range(len(texts)) if i not in unscored), key=lambda i: -reply.scores[i])
    order = (scored + sorted(unscored))[: top_n or len(texts)]
    ranked = [RankedText(index=i, score=None if i in unscored else reply.scores[i]) for i in order]
    return RerankedTexts(ranked=ranked, model=reply.model, unscored=sorted(unscored))


def limits_check(*, count: int, query_chars: int = 0, text_chars: Sequence[int] = ()) -> None:
    """Raise RerankRefused (413) when the sizes of a request pass a limit: the number of texts
    first, then each text's characters, then the query's. Callers pass sizes, so they can check a
    request before they build its texts (search.rerank_api sizes a Cohere document's joined fields
    from the raw JSON)."""
    if count > MAX_RERANK_DOCUMENTS:
        raise RerankRefused(
            f"{count:,} documents; at most {MAX_RERANK_DOCUMENTS} are reranked per call.",
            reason="too_large",
            field="documents",
        )
    longest = max(range(len(text_chars)), key=text_chars.__getitem__, default=None)
    if longest is not None and text_chars[longest] > MAX_RERANK_TEXT_CHARS:
        raise RerankRefused(
            f"Document {longest} has {text_chars[longest]:,} characters; at most {MAX_RERANK_TEXT_CHARS:,} "
            "per document (split it into passages).",
            reason="too_large",
            field="documents",
        )
    if query_chars > MAX_RERANK_QUERY_CHARS:
        raise RerankRefused(
            f"The query has {query_chars:,} characters; at most {MAX_RERANK_QUERY_CHARS:,}.",
            reason="too_large",
            field="query",
        )
