"""Cross-request batching: one background thread owns the model; task threads submit and wait.

The shape of text-embeddings-inference's queue (core/src/queue.rs, infer.rs), for a Celery worker
started with `-P threads -c N`:
- a task thread tokenizes its own pairs (off the model's critical path), puts one request on a
  bounded queue and waits for it, at most until the task's expiry;
- the batching thread takes the requests that are waiting (a window, capped in pairs; what does
  not fit waits for the next window), drops those whose caller has gone, orders them by deadline
  with each one's pairs sorted by token count, and cuts that sequence into forward passes capped
  by a token budget (rows x longest row) where padding plus per-pass cost is least: small
  searches share passes, hardly any padding is computed, and searches finish one after another
  (under overload, the earliest still make their budget instead of all missing it together);
- queue time (submitted -> its first forward pass) and model time (first pass -> last) are
  measured for each request;
- a pass the model fails (CUDA out of memory, an input the model cannot take) is split in two and
  each half is run once more; a half that fails again fails only the requests with pairs in it.

Only this thread touches the model, so nothing forks after CUDA is initialised and a GPU keeps one
stream of work. Scores are those of `Reranker.score` (sigmoid of the logit, in fp32).

A bi-encoder with stored chunk vectors (worker.vectors) is scored one search at a time from
those vectors (one query embedding plus dot products); while no search waits, this thread embeds
the texts the index hook queued, a few at a time.

Two lanes (worker.protocol): a result page's search ("page") is taken before API work ("api"),
and between two forward passes (or two on-the-spot embedding steps) of API work the thread runs
any page search that arrived meanwhile, so an API caller sending the largest requests it may
delays a page search by one pass, never by its whole request. API requests held at once are
capped (`max_api_requests`): past it they are turned away as busy, which keeps the worker's task
threads free for page searches. When the thread falls idle after work, it hands freed memory back
to the system (worker.memory), so a burst does not leave the worker's footprint raised.
"""

from __future__ import annotations

import collections
import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from worker import memory, protocol
from worker.reranker import Reranker, best_per_group
from worker.vectors import API_TEXTS, LIBRARY, ChunkVectors

logger = logging.getLogger(__name__)

# Once the first request of an idle spell arrives, wait this long for others to share its pass.
DEFAULT_GATHER_MS = 2.0
# Pairs taken into one window at most: enough to sort well, few enough that a search which
# arrives later does not wait behind a long tail of others' work.
DEFAULT_WINDOW_PAIRS = 256
# What one more forward pass costs beyond its tokens, counted in tokens: the cuts between passes
# trade this against padding.
PASS_OVERHEAD_TOKENS = 64
# A bi-encoder without stored vectors scores a request in steps of this many texts, looking for
# page searches (and at the deadline) between two steps.
ALONE_STEP_TEXTS = 16
# API requests held at once (queued or being scored) when the caller does not say.
DEFAULT_MAX_API_REQUESTS = 4
# Seconds without work after which the thread hands freed memory back (a trim costs some ms, so
# not after every search, only once traffic pauses).
TRIM_AFTER_IDLE_SECONDS = 1.0
# While pending texts are embedded in the background, memory is handed back at most this often.
MIN_SECONDS_BETWEEN_TRIMS = 10.0


class Overloaded(Exception):
    """The queue is full: answering later would miss the caller's budget anyway."""


class CallerGone(Exception):
    """The request's deadline passed before it was scored; its work was dropped."""


class ModelFailed(RuntimeError):
    """The model raised on this request's pairs, also after its pass was halved."""


@dataclass
class BatchStats:
    """Counters since start: what the padded-token share and pass sizes are computed from."""

    requests: int = 0
    dropped: int = 0
    passes: int = 0
    pairs: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0  # rows x longest row, summed over passes (includes real tokens)
    halved: int = 0  # passes the model failed, split in two and run again
    failed: int = 0  # requests answered with an error because the model failed on them
    preempted: int = 0  # times API work paused between two passes for page searches that arrived
    trims: int = 0  # times the idle thread handed freed memory back to the system

    @property
    def padding_share(self) -> float:
        return 1 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0


@dataclass
class _Request:
    query: str
    texts: list[str]
    features: list[dict[str, list[int]]]  # one tokenized pair per text (empty for bi-encoders)
    deadline: float  # time.monotonic() after which nobody waits for the answer
    lane: str = protocol.PAGE
    submitted: float = field(default_factory=time.perf_counter)
    scores: list[float | None] = field(default_factory=list)
    remaining: int = 0
    started: float | None = None
    finished: float | None = None
    window_requests: int = 1
    first_of_group: list[bool] = field(default_factory=list)
    chunk_ids: list[int | None] | None = None  # each text's library chunk (its vector in PostgreSQL), if any
    query_vector: object = None  # the query's vector, when the caller sent it (not embedded again)
    stored: int = 0  # texts scored from stored vectors
    embedded: int = 0  # texts embedded on the spot
    error: str = ""
    gone: bool = False  # set by the caller when it stops waiting
    done: threading.Event = field(default_factory=threading.Event)

    def expired(self, now: float) -> bool:
        return self.gone or now > self.deadline


class _Pair(NamedTuple):
    """One (query, text) pair of a request, as the batching thread orders and cuts them into passes."""

    tokens: int  # its length in tokens, unpadded
    request: _Request
    index: int  # which of the request's texts


@dataclass
class BatchedScores:
    scores: list[float]
    best: list[int]
    queue_ms: float  # submitted -> first forward pass that carried one of its pairs
    model_ms: float  # that pass -> its last pair scored
    window_requests: int  # searches that shared its window (1: it ran alone)
    unscored: list[int] = field(default_factory=list)  # groups without any scored text (no vector in time)
    stored: int = 0  # texts scored from stored chunk vectors
    embedded: int = 0  # texts embedded on the spot
    missing: int = 0  # texts left without a score


class BatchingReranker:
    """Scores (query, text) pairs for many threads through one model-owning batching thread."""

    def __init__(
        self,
        reranker: Reranker,
        *,
        max_batch_tokens: int,
        max_batch_pairs: int,
        max_queued_pairs: int,
        gather_ms: float = DEFAULT_GATHER_MS,
        window_pairs: int = DEFAULT_WINDOW_PAIRS,
        vectors: ChunkVectors | None = None,
        max_api_requests: int = DEFAULT_MAX_API_REQUESTS,
        embedder: ChunkVectors | None = None,
    ) -> None:
        self.reranker = reranker
        self.vectors = vectors  # a bi-encoder's: what its scores are read from
        # What embeds the library's chunks in the background: the bi-encoder's store, or the
        # embedding model's beside a cross-encoder (EMBEDDING_MODEL).
        self.embedder = vectors if vectors is not None else embedder
        # Pending texts may be waiting from before a restart: look once at the start.
        self._background_due = self.embedder is not None
        self.info = reranker.info
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_pairs = max_batch_pairs
        self.max_queued_pairs = max_queued_pairs
        self.gather_seconds = gather_ms / 1000
        self.window_pairs = window_pairs
        self.max_api_requests = max_api_requests
        self.stats = BatchStats()
        self._queue: collections.deque[_Request] = collections.deque()
        self._queued_pairs = 0
        self._api_requests = 0  # API requests submitted and not yet answered
        self._worked = False  # work done since memory was last handed back
        self._last_window_at = 0.0  # monotonic end of the last window of searches
        self._trimmed_at = float("-inf")
        self._ready = threading.Condition()
        self._tokenizers = threading.local()
        self._thread = threading.Thread(target=self._loop, name="rerank-batcher", daemon=True)
        self._thread.start()

    # --- caller side (task threads) ---------------------------------------------------------

    def serves(self, language: str | None) -> bool:
        return self.reranker.serves(language)

    def score_groups(
        self,
        query: str,
        groups: list[list[str]],
        *,
        deadline: float,
        lane: str = protocol.PAGE,
        chunk_ids: list[list[int | None]] | None = None,
        query_vector: object = None,
    ) -> BatchedScores:
        """Return each group's best score and its index; waits at most until `deadline` (monotonic).

        Raises Overloaded when the queue is full (or, for `lane` "api", when the API's share is
        held already), CallerGone when the deadline passes before any text was scored and
        ModelFailed when the model raises on these pairs (after halving their pass). When the
        deadline passes with some texts scored, those are returned and the groups without any
        score are listed in `unscored`: a partial answer in time beats a full one too late.
        """
        texts = [text for group in groups for text in group]
        if texts and lane == protocol.API:
            self._hold_api_place()
        try:
            request = _Request(
                query=query, texts=texts, features=self._tokenize(query, texts), deadline=deadline, lane=lane
            )
            request.first_of_group = [i == 0 for group in groups for i in range(len(group))]
            if chunk_ids is not None and [len(ids) for ids in chunk_ids] == [len(group) for group in groups]:
                request.chunk_ids = [chunk_id for ids in chunk_ids for chunk_id in ids]
            request.query_vector = query_vector
            request.scores = [None] * len(texts)
            request.remaining = len(texts)
            if texts:
                self._submit(request)
                if not request.done.wait(timeout=max(0.0, deadline - time.monotonic())):
                    request.gone = True  # the batching thread drops what is left of it
                    if all(score is None for score in request.scores):
                        raise CallerGone("the rerank deadline passed before the model reached this search")
                if request.error:
                    raise (CallerGone if request.gone else ModelFailed)(request.error)
        finally:
            if texts and lane == protocol.API:
                with self._ready:
                    self._api_requests -= 1
        # What was scored by now (the batching thread may still fill a pass it had started).
        in_time = list(request.scores)
        flat = [float("-inf") if s is None else float(s) for s in in_time]
        scores, best = best_per_group(groups, flat)
        # A group none of whose texts got a score is reported, never given a made-up one.
        unscored = [
            i for i, (group, score) in enumerate(zip(groups, scores, strict=True)) if group and score == float("-inf")
        ]
        started = request.started or request.submitted
        finished = request.finished or started
        return BatchedScores(
            scores=scores,
            best=best,
            queue_ms=round((started - request.submitted) * 1000, 2),
            model_ms=round((finished - started) * 1000, 2),
            window_requests=request.window_requests,
            unscored=unscored,
            stored=request.stored,
            embedded=request.embedded,
            missing=sum(1 for s in in_time if s is None),
        )

    def _hold_api_place(self) -> None:
        with self._ready:
            if self._api_requests >= self.max_api_requests:
                raise Overloaded(
                    f"{self._api_requests} API reranks are being served already; the rest of the worker is kept for "
                    f"result pages (RERANKER_MAX_API_REQUESTS={self.max_api_requests})"
                )
            self._api_requests += 1

    def queued_pairs(self) -> int:
        """Return the pairs waiting for the batching thread now."""
        return self._queued_pairs

    def notify_background(self) -> None:
        """Tell the batching thread that texts wait to be embedded (it starts when no search waits)."""
        with self._ready:
            self._background_due = True
            self._ready.notify()

    def _tokenize(self, query: str, texts: list[str]) -> list[dict[str, list[int]]]:
        """Return the model inputs of each pair, unpadded (runs on the caller's thread)."""
        if self.info.kind != "cross-encoder" or not texts:
            return []
        tokenizer = getattr(self._tokenizers, "tokenizer", None)
        if tokenizer is None:
            # A fast tokenizer is not safe to share between threads ("Already borrowed").
            tokenizer = self._tokenizers.tokenizer = copy.deepcopy(self.reranker.model.tokenizer)
        encoded = tokenizer(
            [query] * len(texts),
            texts,
            truncation="longest_first",
            max_length=self.info.max_length,
            padding=False,
            return_attention_mask=True,
        )
        names = [name for name in encoded if name in ("input_ids", "token_type_ids", "attention_mask")]
        return [{name: encoded[name][i] for name in names} for i in range(len(texts))]

    def _submit(self, request: _Request) -> None:
        with self._ready:
            if self._queued_pairs and self._queued_pairs + len(request.texts) > self.max_queued_pairs:
                raise Overloaded(
                    f"the reranker's queue is full ({self._queued_pairs} pairs waiting; "
                    f"RERANKER_MAX_QUEUED_PAIRS={self.max_queued_pairs})"
                )
            self._queue.append(request)
            self._queued_pairs += len(request.texts)
            self.stats.requests += 1
            self._ready.notify()

    # --- the batching thread ----------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            window = self._take_window()
            if window is None:
                self._hand_memory_back()
                continue
            if not window:
                self._background_step()
                continue
            self._worked = True
            try:
                self._run_window(window)
            except Exception as error:  # a model error fails this window, never the thread
                logger.exception("reranker: a batch failed")
                for request in window:
                    if not request.done.is_set():
                        request.error = f"{type(error).__name__}: {error}"
                        request.done.set()
            self._last_window_at = time.monotonic()

    def _hand_memory_back(self) -> None:
        """Idle after work: collect garbage and return the freed heap (and GPU cache) to the system."""
        self._worked = False
        self._trimmed_at = time.monotonic()
        self.reranker.release_cached_memory()
        memory.hand_back()
        self.stats.trims += 1

    def _take_window(self) -> list[_Request] | None:
        """Return the requests of the next window: pages first, at least one, about `window_pairs` pairs.

        [] when pending texts wait to be embedded and no search does; None after an idle spell
        that followed work (time to hand memory back).
        """
        with self._ready:
            idle = not self._queue
            while not self._queue:
                trim_at = max(
                    self._last_window_at + TRIM_AFTER_IDLE_SECONDS, self._trimmed_at + MIN_SECONDS_BETWEEN_TRIMS
                )
                if self._worked and time.monotonic() >= trim_at:
                    return None  # no search for a while after work: hand memory back, then look again
                if self._background_due:
                    self._background_due = False
                    return []  # nothing to score: embed a few pending texts, then look again
                if self._worked:
                    self._ready.wait(timeout=max(0.01, trim_at - time.monotonic()))
                else:
                    self._ready.wait()
        if idle and self.gather_seconds:
            time.sleep(self.gather_seconds)  # let searches sent together arrive together
        window: list[_Request] = []
        pairs = 0
        with self._ready:
            # Page searches first, each lane in arrival order.
            for request in sorted(self._queue, key=lambda r: r.lane != protocol.PAGE):
                if window and pairs + len(request.texts) > self.window_pairs:
                    break
                window.append(request)
                pairs += len(request.texts)
            for request in window:
                self._queue.remove(request)
                self._queued_pairs -= len(request.texts)
        return window

    def _serve_waiting_pages(self) -> None:
        """Between two steps of API work: score the page searches that arrived meanwhile, now."""
        with self._ready:
            pages = [request for request in self._queue if request.lane == protocol.PAGE]
            for request in pages:
                self._queue.remove(request)
                self._queued_pairs -= len(request.texts)
        if pages:
            self.stats.preempted += 1
            self._run_window(pages)

    def _run_window(self, window: list[_Request]) -> None:
        now = time.monotonic()
        live = []
        for request in window:
            if request.expired(now):
                self._drop(request)
            else:
                live.append(request)
        for request in live:
            request.window_requests = len(live)
        # Page searches first; then earliest deadline first.
        live.sort(key=lambda r: (r.lane != protocol.PAGE, r.deadline))
        if self.info.kind != "cross-encoder":
            for request in live:
                self._run_alone(request)
            return
        # Each search's pairs shortest first: searches finish one after another (under load some
        # still make their budget), and the cuts between passes still let a short search share a
        # pass with its neighbours.
        items = []
        for request in live:
            own = [_Pair(len(request.features[i]["input_ids"]), request, i) for i in range(len(request.texts))]
            items.extend(sorted(own, key=lambda pair: pair.tokens))
        # Each pass is launched before the previous one is read: on a GPU the next pass's inputs
        # are built while the last one runs, so the GPU does not wait for Python in between.
        pending = None
        for batch in self._passes(items):
            if any(pair.request.lane == protocol.API for pair in batch) and self._page_waiting():
                self._finish(pending)
                pending = None
                self._serve_waiting_pages()
            now = time.monotonic()
            batch = [pair for pair in batch if not pair.request.done.is_set() and not pair.request.expired(now)]
            if not batch:
                continue
            try:
                launched = self._launch(batch)
            except Exception as error:
                self._finish(pending)
                pending = None
                self._halve(batch, error)
                continue
            self._finish(pending)
            pending = (batch, launched)
        self._finish(pending)
        for request in live:
            if not request.done.is_set():
                self._drop(request)

    def _page_waiting(self) -> bool:
        with self._ready:
            return any(request.lane == protocol.PAGE for request in self._queue)

    def _yield_to_pages(self) -> None:
        if self._page_waiting():
            self._serve_waiting_pages()

    def _between_api_steps(self, request: _Request) -> Callable[[], None] | None:
        """Return what to run between two steps of `request`'s work: waiting pages, for API work."""
        return self._yield_to_pages if request.lane == protocol.API else None

    def _passes(self, items: list[_Pair]) -> list[list[_Pair]]:
        """Return the items, in order, cut into passes: rows x longest <= the token budget.

        The cuts minimise the tokens computed (padding included) plus a fixed cost per pass, by
        dynamic programming over the lengths (n x max_batch_pairs steps).
        """
        lengths = [pair.tokens for pair in items]
        cost = [0.0] + [float("inf")] * len(items)
        cut = [0] * (len(items) + 1)
        for end in range(1, len(items) + 1):
            width = 0
            for start in range(end - 1, max(0, end - self.max_batch_pairs) - 1, -1):
                width = max(width, lengths[start])
                rows = end - start
                if rows > 1 and rows * width > self.max_batch_tokens:
                    break
                candidate = cost[start] + rows * width + PASS_OVERHEAD_TOKENS
                if candidate < cost[end]:
                    cost[end], cut[end] = candidate, start
        passes = []
        end = len(items)
        while end > 0:
            passes.append(items[cut[end] : end])
            end = cut[end]
        return passes[::-1]

    def _finish(self, pending: tuple[list[_Pair], object] | None) -> None:
        """Read the scores of a launched pass; if the model raised on it, halve it (see `_halve`)."""
        if pending is None:
            return
        batch, launched = pending
        try:
            self._collect(batch, launched)
        except Exception as error:
            self._halve(batch, error)

    def _halve(self, batch: list[_Pair], error: Exception) -> None:
        """After the model raised on `batch`: run each half of it once more.

        A too-large pass (CUDA out of memory) fits as two; a pair the model cannot take fails its
        half again, and then only the requests with pairs in that half get the error.
        """
        if len(batch) == 1:
            self._fail([batch[0][1]], error)
            return
        logger.warning("reranker: a pass of %d pairs failed (%s); retrying it in two halves", len(batch), error)
        self.stats.halved += 1
        self.reranker.release_cached_memory()
        middle = len(batch) // 2
        for half in (batch[:middle], batch[middle:]):
            half = [pair for pair in half if not pair.request.done.is_set()]
            if not half:
                continue
            try:
                self._collect(half, self._launch(half))
            except Exception as error:
                self._fail(list({id(request): request for _, request, _ in half}.values()), error)

    def _fail(self, requests: list[_Request], error: Exception) -> None:
        """Answer each of `requests` with the model's error (pairs of theirs still queued are skipped)."""
        logger.error("reranker: the model failed on %d search(es): %s: %s", len(requests), type(error).__name__, error)
        for request in requests:
            if not request.done.is_set():
                self.stats.failed += 1
                request.error = f"the model failed on this search's texts ({type(error).__name__}: {error})"
                request.done.set()

    def _launch(self, batch: list[_Pair]) -> object:
        started = time.perf_counter()
        for _, request, _ in batch:
            if request.started is None:
                request.started = started
        return self.reranker.launch_features([request.features[i] for _, request, i in batch])

    def _collect(self, batch: list[_Pair], launched: object) -> None:
        values = launched.tolist()  # waits for the pass on a GPU
        finished = time.perf_counter()
        width = max(length for length, _, _ in batch)
        self.stats.passes += 1
        self.stats.pairs += len(batch)
        self.stats.real_tokens += sum(length for length, _, _ in batch)
        self.stats.padded_tokens += width * len(batch)
        for (_, request, i), value in zip(batch, values, strict=True):
            request.scores[i] = value
            request.remaining -= 1
            if request.remaining == 0:
                request.finished = finished
                request.done.set()

    def _background_step(self) -> None:
        """Embed a few pending texts (searches wait at most this long); a failure is logged, retried later."""
        self._worked = True
        try:
            more = self.embedder.embed_pending()
        except Exception:
            logger.exception("chunk vectors: embedding pending texts failed; retrying at the next notice")
            return
        if more:
            with self._ready:
                self._background_due = True

    def _run_with_vectors(self, request: _Request) -> None:
        request.started = time.perf_counter()
        try:
            scored = self.vectors.score(
                request.query,
                request.texts,
                deadline=request.deadline,
                first_of_group=request.first_of_group,
                between_steps=self._between_api_steps(request),
                # API texts are embedded after the library's, and only so many wait. (A library chunk
                # that the search API meets is queued by the index hook already, as the library's.)
                source=API_TEXTS if request.lane == protocol.API else LIBRARY,
                chunk_ids=request.chunk_ids,
                query_vector=request.query_vector,
            )
        except Exception as error:
            self._fail([request], error)
            return
        request.scores = scored.scores
        request.stored, request.embedded = scored.stored, scored.embedded
        if scored.missing:
            with self._ready:
                self._background_due = True  # the texts it queued, for the next search
        request.finished = time.perf_counter()
        request.remaining = 0
        self.stats.passes += 1
        self.stats.pairs += len(request.texts)
        request.done.set()

    def _run_alone(self, request: _Request) -> None:
        """Score one request by itself (bi-encoders), in steps; a step the model fails is halved once."""
        if self.vectors is not None:
            self._run_with_vectors(request)
            return
        request.started = time.perf_counter()
        between = self._between_api_steps(request)
        scores: list[float] = []
        for start in range(0, len(request.texts), ALONE_STEP_TEXTS):
            if between is not None and start:
                between()
            if request.expired(time.monotonic()):
                self._drop(request)
                return
            try:
                scores.extend(self._score_halving(request.query, request.texts[start : start + ALONE_STEP_TEXTS]))
            except Exception as error:
                self._fail([request], error)
                return
        request.scores = scores
        request.finished = time.perf_counter()
        request.remaining = 0
        self.stats.passes += 1
        self.stats.pairs += len(request.texts)
        request.done.set()

    def _score_halving(self, query: str, texts: list[str]) -> list[float]:
        """Return the model's scores of `texts`; if it raises, score each half once more (raises again)."""
        try:
            return self.reranker.score(query, texts)
        except Exception as error:
            if len(texts) == 1:
                raise
            logger.warning("reranker: %d texts failed (%s); retrying them in two halves", len(texts), error)
            self.stats.halved += 1
            self.reranker.release_cached_memory()
            middle = len(texts) // 2
            return [*self.reranker.score(query, texts[:middle]), *self.reranker.score(query, texts[middle:])]

    def _drop(self, request: _Request) -> None:
        self.stats.dropped += 1
        request.error = "dropped: its caller stopped waiting"
        request.gone = True
        request.done.set()
