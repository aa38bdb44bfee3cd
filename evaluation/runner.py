"""Offline evaluation (the evaluation app): a BEIR-style judged set through the real search path, both orderings scored.

A data set folder holds `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`, `text`,
optional `language`) and `qrels/<split>.tsv` (`query-id`, `corpus-id`, `score`). The corpus goes
into a collection of its own (never the site's library); every query then runs through
`search_run` (PostgreSQL candidates, then the rerank worker) and both orderings are scored with the
same metric code, on the data set's own document ids.

A query the worker does not rerank (a language its model does not serve, or a fallback) keeps its
full-text order as its reranked order, exactly as the search page shows it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.test.utils import override_settings

from common.processes import ChildExited, start_group, stop_group, wait_until_ready
from documents.models import LIBRARY, Document
from documents.services import DocumentInput, IngestError, content_hash_of, documents_import
from documents.textsearch import detect_language
from evaluation.judgments import JudgedSet
from search import worker_client
from search.backends import find_candidates
from search.services import search_run
from worker.command import worker_command
from worker.protocol import ModelInfo, WorkerStatus

# The metrics reported for both orderings, in table order.
METRICS = ("mrr@5", "recall@3", "top1", "ndcg@10", "recall@k_initial")
METRIC_LABELS = {
    "mrr@5": "MRR@5",
    "recall@3": "Recall@3",
    "top1": "Top-1 accuracy",
    "ndcg@10": "nDCG@10",
    "recall@k_initial": "Recall@k_initial (ceiling)",
}
# The randomization test's seed: the same data give the same p-value in every run.
RANDOMIZATION_SEED = 20261201
# Grades at or above this count as relevant for MRR, recall and top-1 (trec_eval's default);
# nDCG uses the grades themselves as gains.
RELEVANT_GRADE = 1
# Evaluation collections are named "eval:<data set>-<corpus hash>": never the site's library, and
# a changed corpus file gets a fresh collection instead of mixing with the old one.
COLLECTION_PREFIX = "eval:"
COLLECTION_HASH_CHARS = 10
# Loading torch and a model on a 2-core CPU takes well under a minute; this leaves room.
WORKER_READY_SECONDS = 240.0
# Rerank statuses (from search_run) after which the reranked order is the full-text order.
NOT_RERANKED_BY_RULE = "skipped"  # the worker's model does not serve the query's language
NO_CANDIDATES = "no-candidates"  # full text found nothing: there is nothing to rerank
NOT_REQUESTED = "not-requested"  # `evaluate --no-rerank`: the first stage alone


class DatasetError(Exception):
    """The folder is not a usable BEIR-style data set; the message says what is missing."""


# --- data set -----------------------------------------------------------------------------------


@dataclass
class EvalQuery:
    id: str
    text: str
    language: str


@dataclass
class Dataset:
    name: str
    directory: Path
    corpus_path: Path | None  # None: the site's library (evaluate --judgments)
    split: str
    queries: list[EvalQuery]
    qrels: dict[str, dict[str, int]]  # query id -> {corpus id: grade}
    judged_query_count: int  # queries with a relevant document in this split, before --max-queries


def dataset_load(
    *, directory: Path, split: str = "test", corpus: Path | None = None, max_queries: int | None = None
) -> Dataset:
    """Return the data set's judged queries in file order, the first `max_queries` of them (reads files).

    Queries without a relevant document in the split are left out (they cannot be scored).
    """
    directory = directory.resolve()
    corpus_path = (corpus or directory / "corpus.jsonl").resolve()
    queries_path = directory / "queries.jsonl"
    qrels_path = directory / "qrels" / f"{split}.tsv"
    for path in (corpus_path, queries_path):
        if not path.is_file():
            raise DatasetError(f"{path} does not exist")
    if not qrels_path.is_file():
        found = sorted(p.stem for p in (directory / "qrels").glob("*.tsv"))
        raise DatasetError(f"{qrels_path} does not exist; splits here: {', '.join(found) or 'none'}")
    qrels = qrels_read(qrels_path)
    judged = []
    for record in _jsonl(queries_path):
        query_id = str(record["_id"])
        if any(grade >= RELEVANT_GRADE for grade in qrels.get(query_id, {}).values()):
            text = str(record["text"])
            judged.append(EvalQuery(query_id, text, record.get("language") or detect_language(text)))
    chosen = judged[:max_queries] if max_queries else judged
    return Dataset(
        name=directory.name,
        directory=directory,
        corpus_path=corpus_path,
        split=split,
        queries=chosen,
        qrels={q.id: qrels[q.id] for q in chosen},
        judged_query_count=len(judged),
    )


def judged_dataset(*, judged: JudgedSet, max_queries: int | None = None) -> Dataset:
    """Return the judged set as the runner's data set: the library's documents, their ids as corpus ids."""
    chosen = judged.queries[:max_queries] if max_queries else judged.queries
    return Dataset(
        name="site-judgments",
        directory=settings.BASE_DIR,
        corpus_path=None,
        split="judgments",
        queries=[EvalQuery(query_id, text, language) for query_id, text, language in chosen],
        qrels={query_id: judged.qrels[query_id] for query_id, _, _ in chosen},
        judged_query_count=len(judged.queries),
    )


def library_ids() -> dict[int, tuple[str, str]]:
    """Return {document pk: (the pk as a corpus id, title)} for the library (one SQL query)."""
    rows = Document.objects.filter(collection=LIBRARY).values_list("id", "title")
    return {pk: (str(pk), title) for pk, title in rows}


def qrels_read(path: Path) -> dict[str, dict[str, int]]:
    """Return {query id: {corpus id: grade}} from a BEIR qrels file (header row optional)."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0] == "query-id":
                continue
            qrels.setdefault(parts[0], {})[parts[1]] = int(float(parts[2]))
    return qrels


def _jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def corpus_items(path: Path) -> Iterator[DocumentInput]:
    """Yield the corpus as documents: BEIR (`_id`, `title`, `text`) or the sample library layout
    (`id`, `title`, `content`, `language`). A document with no text keeps its title as its body."""
    for record in _jsonl(path):
        corpus_id = str(record.get("_id", record.get("id", "")))
        title = record.get("title") or ""
        body = record.get("text", record.get("content")) or title
        yield DocumentInput(
            title=title,
            body=body,
            language=record.get("language"),
            source=f"{path.name}#{corpus_id}",
            external_id=corpus_id,
        )


def collection_name(dataset: Dataset) -> str:
    """Return the data set's own collection name (reads the corpus file to hash it)."""
    digest = hashlib.sha256()
    with dataset.corpus_path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    name = f"{dataset.name}-{digest.hexdigest()[:COLLECTION_HASH_CHARS]}"
    return COLLECTION_PREFIX + name[-(100 - len(COLLECTION_PREFIX)) :]


@dataclass
class ImportReport:
    collection: str
    already: int  # corpus documents found in the collection before this run
    created: int
    duplicates: int  # exact duplicates of another corpus document: stored once, under the first id
    rejected: list[str] = field(default_factory=list)
    seconds: float = 0.0


def corpus_import(*, dataset: Dataset, collection: str) -> ImportReport:
    """Import the corpus documents missing from `collection` (one SQL query, then batched inserts)."""
    started = time.monotonic()
    present = set(Document.objects.filter(collection=collection).values_list("external_id", flat=True))
    missing = (item for item in corpus_items(dataset.corpus_path) if item.external_id not in present)
    outcome = documents_import(items=missing, collection=collection)
    return ImportReport(
        collection=collection,
        already=len(present),
        created=outcome.created,
        duplicates=outcome.duplicates,
        rejected=outcome.rejected,
        seconds=round(time.monotonic() - started, 1),
    )


# --- metrics ------------------------------------------------------------------------------------
# Each takes one query's ranking (corpus ids, best first) and its judgments {corpus id: grade}.


def reciprocal_rank(ranking: list[str], judged: dict[str, int], *, depth: int) -> float:
    """Return 1/rank of the first relevant document within `depth`, else 0."""
    for rank, doc_id in enumerate(ranking[:depth], start=1):
        if judged.get(doc_id, 0) >= RELEVANT_GRADE:
            return 1.0 / rank
    return 0.0


def recall(ranking: list[str], judged: dict[str, int], *, depth: int) -> float:
    """Return the share of the query's relevant documents found within `depth`."""
    relevant = {doc_id for doc_id, grade in judged.items() if grade >= RELEVANT_GRADE}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:depth])) / len(relevant)


def ndcg(ranking: list[str], judged: dict[str, int], *, depth: int) -> float:
    """Return nDCG at `depth` with the grades as linear gains and log2(rank + 1) discounts
    (trec_eval's ndcg_cut): the ideal ranking is the judged grades, best first."""
    dcg = sum(max(judged.get(d, 0), 0) / math.log2(rank + 1) for rank, d in enumerate(ranking[:depth], start=1))
    ideal_gains = sorted((g for g in judged.values() if g > 0), reverse=True)[:depth]
    ideal = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(ideal_gains, start=1))
    return dcg / ideal if ideal > 0 else 0.0


def query_metrics(ranking: list[str], judged: dict[str, int], *, k_initial: int) -> dict[str, float]:
    """Return every reported metric for one query's ranking."""
    return {
        "mrr@5": reciprocal_rank(ranking, judged, depth=5),
        "recall@3": recall(ranking, judged, depth=3),
        "top1": reciprocal_rank(ranking, judged, depth=1),
        "ndcg@10": ndcg(ranking, judged, depth=10),
        "recall@k_initial": recall(ranking, judged, depth=k_initial),
    }


def mean_metrics(per_query: list[dict[str, float]]) -> dict[str, float]:
    """Return each metric's mean over queries (0 for every metric when there are none)."""
    if not per_query:
        return dict.fromkeys(METRICS, 0.0)
    return {name: sum(m[name] for m in per_query) / len(per_query) for name in METRICS}


def paired_randomization_p(ours: list[float], theirs: list[float], *, rounds: int = 10_000) -> float:
    """Return the two-sided p-value of the mean paired difference (sign-flip randomization test).

    Seeded, so a report is reproducible; with `rounds` flips the smallest p it can show is 1/rounds.
    """
    import numpy as np

    differences = np.asarray(ours, dtype=float) - np.asarray(theirs, dtype=float)
    if not len(differences) or not differences.any():
        return 1.0
    observed = abs(differences.mean())
    signs = np.random.default_rng(RANDOMIZATION_SEED).choice([-1.0, 1.0], size=(rounds, len(differences)))
    flipped = np.abs((signs * differences).mean(axis=1))
    return float((np.sum(flipped >= observed - 1e-12) + 1) / (rounds + 1))


def first_relevant_rank(ranking: list[str], judged: dict[str, int]) -> int | None:
    return next((r for r, d in enumerate(ranking, start=1) if judged.get(d, 0) >= RELEVANT_GRADE), None)


# --- running ------------------------------------------------------------------------------------


@dataclass
class QueryResult:
    query: EvalQuery
    fulltext: list[str]  # corpus ids, full-text order, all candidates
    reranked: list[str]  # corpus ids, reranked order (= fulltext when not reranked)
    status: str  # ok | skipped (language not served) | no-candidates | timeout | error | unavailable
    fulltext_metrics: dict[str, float]
    reranked_metrics: dict[str, float]
    model: ModelInfo | None = None
    rerank_ms: float | None = None
    # The rerank pool's semantic candidates (search_run's semantic_status: ok, off, none, unavailable,
    # refused; "" without reranking) and how many of the pool were found by meaning alone.
    semantic_status: str = ""
    meaning_count: int = 0

    @property
    def fell_back(self) -> bool:
        """Whether reranking was wanted but failed (timeout, error, worker unavailable)."""
        return self.status not in ("ok", NOT_RERANKED_BY_RULE, NO_CANDIDATES, NOT_REQUESTED)


def collection_ids(collection: str) -> dict[int, tuple[str, str]]:
    """Return {document pk: (corpus id, title)} for a collection (one SQL query)."""
    rows = Document.objects.filter(collection=collection).values_list("id", "external_id", "title")
    return {pk: (external_id, title) for pk, external_id, title in rows}


def corpus_aliases(*, dataset: Dataset, collection: str) -> dict[int, list[str]]:
    """Return {document pk: the other corpus ids of exactly its text} (reads the corpus; one SQL query).

    The library stores exact duplicates once, under the first id. A ranking then stands for every
    copy, each id in corpus order, as an index that kept the copies would list them side by side.
    """
    stored = dict(Document.objects.filter(collection=collection).values_list("content_hash", "id"))
    primary = dict(Document.objects.filter(collection=collection).values_list("id", "external_id"))
    aliases: dict[int, list[str]] = {}
    for item in corpus_items(dataset.corpus_path):
        try:
            pk = stored.get(content_hash_of(item))
        except IngestError:
            continue
        if pk is not None and item.external_id != primary[pk]:
            aliases.setdefault(pk, []).append(item.external_id)
    return aliases


def corpus_ranking(
    pks: list[int], ids: dict[int, tuple[str, str]], aliases: dict[int, list[str]], depth: int
) -> list[str]:
    """Return the corpus ids of ranked documents, each followed by its exact copies', `depth` at most."""
    ranking: list[str] = []
    for pk in pks:
        ranking.append(ids[pk][0])
        ranking.extend(aliases.get(pk, ()))
    return ranking[:depth]


def query_evaluate(
    *,
    query: EvalQuery,
    judged: dict[str, int],
    collection: str,
    k_initial: int,
    ids: dict[int, tuple[str, str]],
    aliases: dict[int, list[str]] | None = None,
    rerank: bool = True,
    expand: bool = False,
) -> QueryResult:
    """Return both orderings of one query and their metrics (SQL; network: one rerank round trip).

    Without `rerank`, only the full-text candidates are fetched (the first stage alone). `expand`:
    with the site's typo, prefix and Chinese-character expansion (off: plain BM25, the published
    figures).
    """
    aliases = aliases or {}
    if not rerank:
        found = find_candidates(query.text, k=k_initial, collection=collection, expand=expand).candidates
        fulltext = corpus_ranking([c.document_id for c in found], ids, aliases, k_initial)
        metrics = query_metrics(fulltext, judged, k_initial=k_initial)
        status = NOT_REQUESTED if found else NO_CANDIDATES
        return QueryResult(query, fulltext, list(fulltext), status, metrics, dict(metrics))
    outcome = search_run(query=query.text, k=k_initial, k_initial=k_initial, collection=collection, expand=expand)
    fulltext = corpus_ranking([row.document_id for row in outcome.fulltext], ids, aliases, k_initial)
    reranked = (
        corpus_ranking([row.document_id for row in outcome.reranked], ids, aliases, k_initial)
        if outcome.is_reranked
        else list(fulltext)
    )
    status = outcome.rerank_status if outcome.candidate_count else NO_CANDIDATES
    return QueryResult(
        query=query,
        fulltext=fulltext,
        reranked=reranked,
        status=status,
        fulltext_metrics=query_metrics(fulltext, judged, k_initial=k_initial),
        reranked_metrics=query_metrics(reranked, judged, k_initial=k_initial),
        model=outcome.reranker,
        rerank_ms=outcome.timings.get("rerank_ms"),
        semantic_status=outcome.semantic_status,
        meaning_count=outcome.meaning_count,
    )


def summary(results: list[QueryResult]) -> dict[str, dict[str, float]]:
    """Return the mean metrics of both orderings over `results`."""
    return {
        "fulltext": mean_metrics([r.fulltext_metrics for r in results]),
        "reranked": mean_metrics([r.reranked_metrics for r in results]),
    }


def by_language(results: list[QueryResult]) -> dict[str, dict]:
    """Return {language: {"queries": n, "fulltext": {...}, "reranked": {...}}}, languages sorted."""
    groups: dict[str, list[QueryResult]] = {}
    for result in results:
        groups.setdefault(result.query.language, []).append(result)
    return {lang: {"queries": len(group), **summary(group)} for lang, group in sorted(groups.items())}


def status_counts(results: list[QueryResult], *, field: str = "status") -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        value = getattr(result, field)
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def movers(results: list[QueryResult], *, metric: str = "ndcg@10", limit: int = 5) -> tuple[list, list]:
    """Return (helped, hurt): the queries whose `metric` the reranker changed most, each way."""
    moved = [(r.reranked_metrics[metric] - r.fulltext_metrics[metric], r) for r in results]
    helped = sorted((m for m in moved if m[0] > 0), key=lambda m: -m[0])[:limit]
    hurt = sorted((m for m in moved if m[0] < 0), key=lambda m: m[0])[:limit]
    return helped, hurt


# --- a private rerank worker --------------------------------------------------------------------


class WorkerNotReady(Exception):
    """The private worker exited or did not load its model; the message carries its log's tail."""


@dataclass
class PrivateWorker:
    """A rerank worker process started for one evaluation, on a queue nobody else uses."""

    process: subprocess.Popen
    queue: str
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = WORKER_READY_SECONDS) -> WorkerStatus:
        """Return the worker's status once it has loaded its model (network: Redis)."""
        last = WorkerStatus(ready=False, problem="no rerank worker answered yet")

        def ready() -> WorkerStatus | None:
            nonlocal last
            last = worker_client.worker_status(timeout=2.0)
            if not last.ready and "no rerank worker" not in last.problem:
                raise WorkerNotReady(f"the worker serves no model: {last.problem}\n{self.log_tail()}")
            return last if last.ready else None

        with override_settings(RERANK_QUEUE=self.queue):
            try:
                status = wait_until_ready(self.process, ready, timeout=timeout)
            except ChildExited as exited:
                raise WorkerNotReady(f"the worker exited with {exited.returncode}:\n{self.log_tail()}") from None
        if status is None:
            raise WorkerNotReady(f"the worker was not ready after {timeout:.0f} s ({last}):\n{self.log_tail()}")
        return status

    def stop(self, grace: float = 15.0) -> None:
        """Stop the worker's process group (we started it in its own session), SIGKILL if it lingers."""
        stop_group(self.process, grace=grace)


def worker_start(*, model: str, languages: str | None = None, log_path: Path | None = None) -> PrivateWorker:
    """Start a rerank worker serving `model` on a fresh private queue (no fallback model)."""
    queue = f"rerank-eval-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "RERANK_QUEUE": queue,
        "RERANKER_MODEL": model,
        # Measure the model asked for, never a silently substituted one.
        "RERANKER_FALLBACK_MODEL": "",
        "PYTHONUNBUFFERED": "1",
    }
    if languages is not None:
        env["RERANKER_LANGUAGES"] = languages
    if log_path is None:
        log_path = Path(tempfile.gettempdir()) / f"evaluate-{queue}.log"
    # The same command line as `make run`'s worker, so the evaluation measures the product's worker.
    command = worker_command(queue)
    process = start_group(command, env=env, cwd=settings.BASE_DIR, log_path=log_path)
    return PrivateWorker(process=process, queue=queue, log_path=log_path)


@contextlib.contextmanager
def rerank_settings(*, queue: str, timeout: float) -> Iterator[None]:
    """Send rerank tasks to `queue` and wait up to `timeout` seconds for each, within the block.

    The rerank cache is off: an evaluation measures the worker's model on every query, never a
    score cached by another run (a private worker's model is not the web's RERANKER_MODEL). A
    bi-encoder with stored vectors (packaged-e5) embeds the candidates' chunks it has no vector
    for on the spot, within this budget, and keeps them for the next run. The
    client's warning for each query it does not rerank is muted: the run counts them instead.
    """
    client_log = logging.getLogger(worker_client.__name__)
    level = client_log.level
    client_log.setLevel(logging.ERROR)
    try:
        with override_settings(RERANK_QUEUE=queue, RERANK_TIMEOUT=timeout, RERANK_CACHE_SECONDS=0):
            yield
    finally:
        client_log.setLevel(level)
