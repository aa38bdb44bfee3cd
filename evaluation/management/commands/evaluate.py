"""Evaluate both orderings on a BEIR-style data set or the site's judgments; store the run; optionally write files."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from common.processes import sigterm_as_exit
from documents.models import LIBRARY
from evaluation import jobs, judgments, runner
from evaluation.models import EvaluationRun, JobStatus
from evaluation.reports import (
    NO_RERANKER,
    add_baseline,
    command_line,
    display_path,
    machine_line,
    mover,
    render_markdown,
    write_outputs,
)
from evaluation.runner import DatasetError, QueryResult, WorkerNotReady
from evaluation.runs import chart_png, evaluation_run_store
from search import worker_client
from search.services import SearchUnavailable

# Offline evaluation never wants the page's short budget: a timeout would score the full-text
# order as the reranked one. Generous, and every fallback that still happens is counted.
DEFAULT_RERANK_TIMEOUT = 60.0
MOVERS_SHOWN = 5


class Command(BaseCommand):
    help = (
        "Run a BEIR-style data set (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) through the real "
        "search path and report MRR@5, Recall@3, top-1, nDCG@10 and Recall@k_initial for the full-text "
        "and the reranked order (SQL, Redis, the rerank worker)."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset_dir", type=Path, nargs="?", default=None)
        parser.add_argument(
            "--judgments",
            action="store_true",
            help="evaluate on the site's own judgments (staff's; the library's documents) instead of a data set",
        )
        parser.add_argument(
            "--include-public", action="store_true", help="with --judgments: visitors' judgments too, not only staff's"
        )
        parser.add_argument(
            "--include-stale",
            action="store_true",
            help="with --judgments: keep judgments whose document changed since (left out and listed by default)",
        )
        parser.add_argument(
            "--name", default=None, help="the stored run's name (default: the data set's, and the model)"
        )
        parser.add_argument("--split", default="test", help="qrels/<split>.tsv (default: test)")
        parser.add_argument("--corpus", type=Path, default=None, help="corpus file (default: DATASET_DIR/corpus.jsonl)")
        parser.add_argument(
            "--k-initial", type=int, default=None, help=f"candidates per query (default {settings.SEARCH_K_INITIAL})"
        )
        parser.add_argument("--max-queries", type=int, default=None, help="the first N judged queries, in file order")
        parser.add_argument(
            "--model",
            default=None,
            help="start a private worker serving this model (hub id, directory, packaged-minilm); "
            "default: use the running worker on the configured queue",
        )
        parser.add_argument(
            "--languages",
            default=None,
            help="RERANKER_LANGUAGES for the private worker, e.g. en,zh (default: the environment's)",
        )
        parser.add_argument("--rerank-timeout", type=float, default=DEFAULT_RERANK_TIMEOUT)
        parser.add_argument(
            "--expand",
            action="store_true",
            help="search as the site does, forgiving typos and completing the last word (default: plain BM25)",
        )
        parser.add_argument(
            "--no-rerank",
            action="store_true",
            help="evaluate the full-text candidates alone (no worker; with --baseline: the first-stage table)",
        )
        parser.add_argument(
            "--baseline",
            choices=["bm25s"],
            default=None,
            help="also rank the same queries with bm25s over the corpus file (needs bm25s, jieba, PyStemmer)",
        )
        parser.add_argument("--output", type=Path, default=None, help="write report.md, chart.png, results.json here")
        parser.add_argument(
            "--job",
            type=int,
            default=None,
            help="the evaluation page's job to report progress to (evaluation.jobs starts this command with it)",
        )
        parser.add_argument(
            "--per-query-depth", type=int, default=None, help="keep only the top N ids per query in results.json"
        )

    def handle(self, *args: object, **options: object) -> None:
        self.job = None
        self.expand = bool(options["expand"])
        if options["job"] is None:
            self._handle(options)
            return
        self.job = jobs.job_begin(options["job"])
        try:
            run = self._handle(options)
        except BaseException as error:  # a CommandError, a SIGTERM (SystemExit), anything: the page says why
            reason = str(error) or type(error).__name__
            jobs.job_finish(self.job, status=JobStatus.FAILED, message=reason)
            raise
        jobs.job_finish(self.job, status=JobStatus.DONE, message=f"stored as run {run.pk}", run=run)

    def _handle(self, options: dict) -> EvaluationRun:
        if options["languages"] is not None and not options["model"]:
            raise CommandError("--languages configures the private worker: give --model too")
        if options["no_rerank"] and options["model"]:
            raise CommandError("--no-rerank runs no worker: leave out --model")
        k_initial = max(1, min(options["k_initial"] or settings.SEARCH_K_INITIAL, settings.SEARCH_K_INITIAL_MAX))
        if options["judgments"]:
            dataset, imported, ids, judged = self._judged_set(options)
        else:
            dataset, imported, ids = self._dataset(options)
            judged = None
        if not dataset.queries:
            raise CommandError("no judged query with a relevant document to evaluate")
        started = time.monotonic()
        results, worker_info = self._run(dataset, imported.collection, k_initial, ids, options)
        report = self._report(dataset, imported, results, worker_info, k_initial, options, time.monotonic() - started)
        if judged is not None:
            report["judgments"] = judged
            report["corpus"] = "the site's library"
        if options["baseline"]:
            self.stderr.write(f"ranking the same {len(results)} queries with {options['baseline']}")
            add_baseline(report, dataset, results, k_initial)
        self.stdout.write("\n".join(render_markdown(report, chart=None)))
        if options["output"]:
            write_outputs(report, options["output"])
            self.stderr.write(f"wrote report.md, chart.png, results.json to {options['output']}")
        run = evaluation_run_store(report=report, name=options["name"], chart_png=chart_png(report))
        self.stderr.write(f"stored as evaluation run {run.pk} (/evaluation/runs/{run.pk})")
        return run

    def _dataset(self, options: dict) -> tuple[runner.Dataset, runner.ImportReport, dict]:
        """Return the data set, its import into its own collection, and its documents' corpus ids."""
        if options["dataset_dir"] is None:
            raise CommandError("give a data set folder, or --judgments to evaluate on the site's own judgments")
        if options["include_public"] or options["include_stale"]:
            raise CommandError("--include-public and --include-stale go with --judgments")
        try:
            dataset = runner.dataset_load(
                directory=options["dataset_dir"],
                split=options["split"],
                corpus=options["corpus"],
                max_queries=options["max_queries"],
            )
        except DatasetError as error:
            raise CommandError(str(error)) from error
        collection = runner.collection_name(dataset)
        self.stderr.write(f"importing {dataset.corpus_path} into collection {collection!r} (missing documents only)")
        imported = runner.corpus_import(dataset=dataset, collection=collection)
        self.stderr.write(
            f"  {imported.already} already there, {imported.created} created, {imported.duplicates} exact "
            f"duplicates, {len(imported.rejected)} rejected ({imported.seconds:.1f} s)"
        )
        ids = runner.collection_ids(collection)
        aliases = runner.corpus_aliases(dataset=dataset, collection=collection)
        if aliases:
            copies = sum(len(v) for v in aliases.values())
            self.stderr.write(f"  {copies} corpus ids are exact copies of stored documents: ranked with them")
        return dataset, imported, {"ids": ids, "aliases": aliases}

    def _judged_set(self, options: dict) -> tuple[runner.Dataset, runner.ImportReport, dict, dict]:
        """Return the site's judgments as a data set over the library (document ids as corpus ids)."""
        if options["dataset_dir"] is not None or options["corpus"] or options["baseline"]:
            raise CommandError("--judgments evaluates the library: leave out the data set folder, --corpus, --baseline")
        judged = judgments.judged_set(include_public=options["include_public"], include_stale=options["include_stale"])
        dataset = runner.judged_dataset(judged=judged, max_queries=options["max_queries"])
        ids = runner.library_ids()
        selection = "staff and public judgments" if options["include_public"] else "staff judgments"
        self.stderr.write(
            f"{len(judged.queries)} judged queries from {judged.judgments} {selection} by {judged.judges} judges; "
            f"{len(judged.stale)} stale judgments "
            + ("kept (--include-stale)" if options["include_stale"] else "left out")
        )
        imported = runner.ImportReport(collection=LIBRARY, already=len(ids), created=0, duplicates=0)
        summary = {
            "selection": selection,
            "judgments": judged.judgments,
            "judges": judged.judges,
            "stale": judged.stale,
            "stale_kept": options["include_stale"],
            "queries_without_relevant": judged.unjudged_queries,
        }
        return dataset, imported, {"ids": ids, "aliases": {}}, summary

    def _run(
        self, dataset, collection: str, k_initial: int, corpus: dict, options: dict
    ) -> tuple[list[QueryResult], dict]:
        ids, aliases = corpus["ids"], corpus["aliases"]
        if options["no_rerank"]:
            results = self._queries(dataset, collection, k_initial, ids, aliases, rerank=False)
            return results, {"status": NO_RERANKER, "ids": ids}
        with sigterm_as_exit():  # a SIGTERM still stops the private worker (the `finally` below)
            return self._run_reranked(dataset, collection, k_initial, corpus, options)

    def _run_reranked(
        self, dataset, collection: str, k_initial: int, corpus: dict, options: dict
    ) -> tuple[list[QueryResult], dict]:
        ids, aliases = corpus["ids"], corpus["aliases"]
        worker = None
        if options["model"]:
            worker = runner.worker_start(model=options["model"], languages=options["languages"])
        try:
            if worker is not None:
                self.stderr.write(f"started a rerank worker (pid {worker.process.pid}, log {worker.log_path})")
                try:
                    status = worker.wait_ready()
                except WorkerNotReady as error:
                    raise CommandError(f"the private rerank worker for {options['model']!r} failed: {error}") from error
                queue = worker.queue
            else:
                queue = settings.RERANK_QUEUE
                status = worker_client.worker_status(timeout=5.0)
                if not status.ready or status.model is None:
                    raise CommandError(
                        f"no rerank worker serves queue {queue!r} ({status.problem}). Start one "
                        "(`make run`) or pass --model NAME to start a private one."
                    )
            self.stderr.write(f"reranker: {status.model.model} ({status.model.kind}) on queue {queue}")
            with runner.rerank_settings(queue=queue, timeout=options["rerank_timeout"]):
                results = self._queries(dataset, collection, k_initial, ids, aliases, rerank=True)
            return results, {"status": status.model, "ids": ids}
        finally:
            if worker is not None:
                worker.stop()

    def _queries(
        self, dataset, collection: str, k_initial: int, ids: dict, aliases: dict, *, rerank: bool
    ) -> list[QueryResult]:
        expand = self.expand
        results = []
        total = len(dataset.queries)
        for done, query in enumerate(tqdm(dataset.queries, desc=dataset.name, unit="query", mininterval=2.0)):
            if self.job is not None:
                jobs.job_progress(self.job, done=done, total=total, message=f"query {done + 1} of {total}")
            try:
                results.append(
                    runner.query_evaluate(
                        query=query,
                        judged=dataset.qrels[query.id],
                        collection=collection,
                        k_initial=k_initial,
                        ids=ids,
                        aliases=aliases,
                        rerank=rerank,
                        expand=expand,
                    )
                )
            except SearchUnavailable as error:
                raise CommandError(str(error)) from error
        if self.job is not None:
            jobs.job_progress(self.job, done=total, total=total, message="storing the run")
        return results

    def _report(self, dataset, imported, results, worker_info, k_initial, options, seconds) -> dict:
        served = worker_info["status"]
        seen = {r.model.model for r in results if r.model}
        ids_titles = {external_id: title for external_id, title in worker_info["ids"].values()}
        helped, hurt = runner.movers(results, limit=MOVERS_SHOWN)
        rerank_ms = [r.rerank_ms for r in results if r.status == "ok" and r.rerank_ms is not None]
        depth = options["per_query_depth"]
        return {
            "dataset": dataset.name,
            "model": served.model,
            "k_initial": k_initial,
            **runner.summary(results),
            "languages": runner.by_language(results),
            "split": dataset.split,
            "corpus": display_path(dataset.corpus_path) if dataset.corpus_path else "",
            "collection": imported.collection,
            "model_info": served.as_dict(),
            "models_seen_in_replies": sorted(m for m in seen if m),
            "queries": len(results),
            "judged_queries_in_split": dataset.judged_query_count,
            "query_selection": "the first N judged queries in queries.jsonl order"
            if options["max_queries"]
            else "all judged queries",
            "rerank_status": runner.status_counts(results),
            "fallbacks": sum(1 for r in results if r.fell_back),
            # The rerank pool: BM25's candidates alone, or fused with the nearest documents by vector.
            "semantic": {
                "status": runner.status_counts(results, field="semantic_status"),
                "rrf_k": settings.SEARCH_RRF_K,
                "meaning_candidates": sum(r.meaning_count for r in results),
            }
            if not options["no_rerank"]
            else None,
            "relevant_grade": runner.RELEVANT_GRADE,
            "import": {
                "already": imported.already,
                "created": imported.created,
                "duplicates": imported.duplicates,
                "rejected": len(imported.rejected),
            },
            "movers": {
                "metric": "ndcg@10",
                "helped": [mover(delta, r, dataset.qrels, ids_titles) for delta, r in helped],
                "hurt": [mover(delta, r, dataset.qrels, ids_titles) for delta, r in hurt],
            },
            "run": {
                "date": datetime.now(UTC).strftime("%Y-%m-%d"),
                "command": command_line(options),
                "machine": machine_line(served),
                "seconds": round(seconds, 1),
                "mean_rerank_ms": round(sum(rerank_ms) / len(rerank_ms), 1) if rerank_ms else None,
                "rerank_timeout_s": options["rerank_timeout"],
            },
            "per_query_depth": depth,
            "reranking": not options["no_rerank"],
            "expansion": self.expand,  # typo, prefix and Chinese-character expansion (--expand)
            # The share of BM25 in the reranked order's score (a bi-encoder's blend; 0: the model's alone).
            "bm25_weight": settings.RERANK_BI_ENCODER_BM25_WEIGHT if served.kind == "bi-encoder" else 0.0,
            "fulltext_parameters": {
                "k1": settings.SEARCH_BM25_K1,
                "b": settings.SEARCH_BM25_B,
                "title_weight": settings.SEARCH_BM25_TITLE_WEIGHT,
            },
            "per_query": [
                {
                    "query_id": r.query.id,
                    "query": r.query.text,
                    "language": r.query.language,
                    "rerank_status": r.status,
                    "semantic_status": r.semantic_status,
                    "meaning_count": r.meaning_count,
                    "metrics": {
                        "fulltext": {name: round(value, 4) for name, value in r.fulltext_metrics.items()},
                        "reranked": {name: round(value, 4) for name, value in r.reranked_metrics.items()},
                    },
                    "fulltext": r.fulltext[:depth] if depth else r.fulltext,
                    "reranked": r.reranked[:depth] if depth else r.reranked,
                }
                for r in results
            ],
        }
