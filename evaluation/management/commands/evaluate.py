"""Evaluate both orderings on a BEIR-style data set or the site's judgments; store the run; optionally write files."""

from __future__ import annotations

import json
import os
import platform
import shlex
import time
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from documents.models import LIBRARY
from evaluation import jobs, judgments, runner
from evaluation.models import EvaluationRun, JobStatus
from evaluation.runner import METRIC_LABELS, METRICS, DatasetError, QueryResult, WorkerNotReady
from evaluation.runs import chart_png, evaluation_run_store
from search import worker_client
from search.services import SearchUnavailable
from searchsite.processes import sigterm_as_exit
from worker.protocol import ModelInfo

# Offline evaluation never wants the page's short budget: a timeout would score the full-text
# order as the reranked one. Generous, and every fallback that still happens is counted.
DEFAULT_RERANK_TIMEOUT = 60.0
MOVERS_SHOWN = 5
# What the report names as the model of a `--no-rerank` run.
NO_RERANKER = ModelInfo(
    model="none (--no-rerank)",
    kind="none",
    device="-",
    dtype="",
    max_length=0,
    load_seconds=0.0,
    requested="",
    languages=[],
)
TITLE_CHARS = 60


def change(before: float, after: float) -> str:
    """Return "+0.220 (+36.1%)": the absolute and the relative change."""
    delta = after - before
    if before == 0:
        return f"{delta:+.3f} ({'n/a' if delta else '±0%'})"
    return f"{delta:+.3f} ({delta / before * 100:+.1f}%)"


def metrics_table(
    fulltext: dict[str, float], reranked: dict[str, float] | None, k_initial: int, baseline: dict | None = None
) -> list[str]:
    """Return a Markdown table of the orderings run, one row per metric: the baseline's (when run),
    the full-text order, and the reranked order (unless the run had no reranker)."""
    header, rule = ["Metric"], ["---"]
    if baseline is not None:
        header += [baseline["name"], "Full-text order", f"vs {baseline['name']}"]
        rule += ["---:"] * 3
    else:
        header += ["Full-text order"]
        rule += ["---:"]
    if reranked is not None:
        header += ["Reranked order", "Change"]
        rule += ["---:"] * 2
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    for name in METRICS:
        cells = [METRIC_LABELS[name].replace("k_initial", str(k_initial))]
        if baseline is not None:
            peer = baseline["metrics"][name]
            cells += [f"{peer:.3f}", f"{fulltext[name]:.3f}", change(peer, fulltext[name])]
        else:
            cells += [f"{fulltext[name]:.3f}"]
        if reranked is not None:
            cells += [f"{reranked[name]:.3f}", change(fulltext[name], reranked[name])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _short(text: str, limit: int = TITLE_CHARS) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def machine_line(model_info: ModelInfo | None) -> str:
    cpu = platform.processor() or platform.machine()
    with_cpuinfo = Path("/proc/cpuinfo")
    if with_cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in with_cpuinfo.read_text().splitlines() if "model name" in line
        ]
        cpu = names[0] if names else cpu
    device = model_info.device if model_info else "?"
    return f"{os.cpu_count()}-core CPU ({cpu}); model device: {device}"


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


def add_baseline(report: dict, dataset, results: list[QueryResult], k_initial: int) -> None:
    """Add the baseline's metrics (all queries, per language) and rankings to `report` (CPU)."""
    from evaluation.baseline import bm25s_rankings

    run = bm25s_rankings(corpus=dataset.corpus_path, queries=[r.query for r in results], depth=k_initial)
    per_query = {
        r.query.id: runner.query_metrics(run.rankings[r.query.id], dataset.qrels[r.query.id], k_initial=k_initial)
        for r in results
    }
    report["baseline"] = {
        "name": run.name,
        "description": run.description,
        "metrics": runner.mean_metrics(list(per_query.values())),
        # Full-text order minus the baseline, per metric, and how likely such a gap is by chance.
        "difference": {
            metric: {
                "mean": round(
                    sum(r.fulltext_metrics[metric] - per_query[r.query.id][metric] for r in results)
                    / max(len(results), 1),
                    4,
                ),
                "p": round(
                    runner.paired_randomization_p(
                        [r.fulltext_metrics[metric] for r in results], [per_query[r.query.id][metric] for r in results]
                    ),
                    4,
                ),
            }
            for metric in ("ndcg@10", "recall@k_initial")
        },
    }
    for language, figures in report["languages"].items():
        chosen = [per_query[r.query.id] for r in results if r.query.language == language]
        figures["baseline"] = {"name": run.name, "metrics": runner.mean_metrics(chosen)}
    depth = report["per_query_depth"]
    for row in report["per_query"]:
        ranking = run.rankings[row["query_id"]]
        row["baseline"] = ranking[:depth] if depth else ranking


def mover(delta: float, result: QueryResult, qrels: dict, titles: dict[str, str]) -> dict:
    judged = qrels[result.query.id]

    def top(ranking: list[str]) -> dict | None:
        if not ranking:
            return None
        return {"id": ranking[0], "title": _short(titles.get(ranking[0], "")), "grade": judged.get(ranking[0], 0)}

    return {
        "query_id": result.query.id,
        "query": result.query.text,
        "language": result.query.language,
        "delta": round(delta, 4),
        "fulltext": round(result.fulltext_metrics["ndcg@10"], 4),
        "reranked": round(result.reranked_metrics["ndcg@10"], 4),
        "first_relevant": [
            runner.first_relevant_rank(result.fulltext, judged),
            runner.first_relevant_rank(result.reranked, judged),
        ],
        "top1": [top(result.fulltext), top(result.reranked)],
    }


def display_path(path: Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(settings.BASE_DIR))
    except ValueError:
        return str(path)


def command_line(options: dict) -> str:
    """Return the command that reproduces this run, from its options."""
    words = ["python", "manage.py", "evaluate"]
    if options.get("judgments"):
        words.append("--judgments")
        words += [f"--{name.replace('_', '-')}" for name in ("include_public", "include_stale") if options.get(name)]
    else:
        words.append(display_path(options["dataset_dir"]))
    for name in ("split", "corpus", "k_initial", "max_queries", "model", "languages", "baseline", "per_query_depth"):
        value = options.get(name)
        if value is None or (name == "split" and value == "test"):
            continue
        words += [f"--{name.replace('_', '-')}", display_path(value) if isinstance(value, Path) else str(value)]
    if options.get("no_rerank"):
        words.append("--no-rerank")
    if options.get("output"):
        words += ["--output", display_path(options["output"])]
    return shlex.join(words)


def render_markdown(report: dict, *, chart: str | None) -> list[str]:
    """Return report.md's lines: both orderings, per language, rerank statuses, the top movers."""
    k = report["k_initial"]
    info = ModelInfo.from_dict(report["model_info"]) or NO_RERANKER
    run = report["run"]
    lines = [
        f"# Evaluation: {report['dataset']} ({report['split']} split)",
        "",
        f"- Model served: **{info.model}** ({info.kind}, {info.device}, languages: "
        f"{', '.join(info.languages or ['all'])})",
        *(
            [
                f"- Reranked order: {report['bm25_weight']:g} × BM25 + {1 - report['bm25_weight']:g} × the model's "
                "score, each min-max scaled over the query's candidates (RERANK_BI_ENCODER_BM25_WEIGHT)"
            ]
            if report.get("bm25_weight")
            else []
        ),
        *(
            [
                "- Full-text order: BM25F, k1 {k1:g}, b {b:g}, title weight {title_weight:g} (SEARCH_BM25_*)".format(
                    **report["fulltext_parameters"]
                )
            ]
            if report.get("fulltext_parameters")
            else []
        ),
        f"- Queries: {report['queries']} of {report['judged_queries_in_split']} judged ({report['query_selection']});"
        f" k_initial = {k}; relevant = grade ≥ {report['relevant_grade']}",
        f"- Date: {run['date']}; machine: {run['machine']}; {run['seconds']:.0f} s, mean rerank round trip "
        f"{run['mean_rerank_ms']} ms",
        f"- Command: `{run['command']}`",
        f"- Corpus: `{report['corpus']}` → collection `{report['collection']}` "
        f"({report['import']['duplicates']} exact duplicates stored once, {report['import']['rejected']} rejected)",
        "",
        "## Both orderings",
        "",
        *(baseline_lines(report) if report.get("baseline") else []),
        *metrics_table(report["fulltext"], _reranked(report, report), k, report.get("baseline")),
        "",
        f"Rerank status per query: {', '.join(f'{name} {n}' for name, n in report['rerank_status'].items())}. "
        "A query that is not reranked (`skipped`: a language the model does not serve; a fallback: timeout, "
        "error, unavailable) is counted with its full-text order as its reranked order. "
        f"Fallbacks: {report['fallbacks']}.",
    ]
    if chart:
        lines += ["", f"![both orderings per metric]({chart})"]
    if report.get("judgments"):
        lines += ["", *judgment_lines(report["judgments"])]
    if len(report["languages"]) > 1:
        lines += ["", "## Per language"]
        for language, figures in report["languages"].items():
            lines += ["", f"### {language} ({figures['queries']} queries)", ""]
            lines += metrics_table(figures["fulltext"], _reranked(report, figures), k, figures.get("baseline"))
    if not report.get("reranking", True):
        return lines
    lines += ["", "## Queries the reranker moved most (nDCG@10)"]
    for heading, rows in (("Helped", report["movers"]["helped"]), ("Hurt", report["movers"]["hurt"])):
        lines += ["", f"### {heading}", ""]
        if not rows:
            lines.append("None.")
            continue
        lines += [
            "| Query | nDCG@10 | First relevant rank | Top 1 before → after (grade) |",
            "|---|---:|---:|---|",
        ]
        for row in rows:
            before, after = (_rank(r) for r in row["first_relevant"])
            tops = " → ".join(_top(t) for t in row["top1"])
            lines.append(
                f"| `{row['query_id']}` {_short(row['query'])} | {row['fulltext']:.3f} → {row['reranked']:.3f} "
                f"| {before} → {after} | {tops} |"
            )
    return lines


def judgment_lines(judged: dict) -> list[str]:
    """Return the lines that say which judgments were used, and list the stale ones."""
    stale = judged["stale"]
    lines = [
        "## Judgments",
        "",
        f"{judged['judgments']} {judged['selection']} by {judged['judges']} judges; several judges' grades of one "
        "document are averaged, halves rounded up. "
        f"{judged['queries_without_relevant']} judged queries had no relevant document and are left out.",
    ]
    if not stale:
        return [*lines, "", "No stale judgments: no judged document changed since it was judged."]
    kept = "kept in the figures (--include-stale)" if judged["stale_kept"] else "left out of the figures"
    lines += [
        "",
        f"Stale judgments (the document changed after it was judged), {kept}: {len(stale)}.",
        "",
        "| Query | Document | Grade | Judged |",
        "|---|---|---:|---|",
    ]
    lines += [
        f"| {_short(item['query'])} | {item['document_id']} {_short(item['title'])} | {item['grade']} "
        f"| {item['judged_at'][:16]} |"
        for item in stale
    ]
    return lines


def baseline_lines(report: dict) -> list[str]:
    """Return the lines that name the baseline and say whether the full-text order differs from it."""
    baseline = report["baseline"]
    gaps = "; ".join(
        f"{METRIC_LABELS[metric].replace(' (ceiling)', '').replace('k_initial', str(report['k_initial']))} "
        f"{gap['mean']:+.3f} (p = {gap['p']:.3f})"
        for metric, gap in baseline["difference"].items()
    )
    return [
        f"Baseline: {baseline['description']}, on the same queries and judgments.",
        f"Full-text order minus {baseline['name']}: {gaps}; p is a paired sign-flip randomization test "
        "(10,000 flips): the chance of a gap this large if the two rankings were equally good.",
        "",
    ]


def _reranked(report: dict, figures: dict) -> dict | None:
    """Return the reranked metrics to show, None for a run without a reranker (--no-rerank)."""
    return figures["reranked"] if report.get("reranking", True) else None


def _rank(value: int | None) -> str:
    return "–" if value is None else str(value)


def _top(top: dict | None) -> str:
    return "–" if top is None else f"`{top['id']}` {top['title']} ({top['grade']})"


def write_outputs(report: dict, directory: Path) -> None:
    """Write report.md, chart.png and results.json into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    chart_write(report, directory / "chart.png")
    (directory / "report.md").write_text("\n".join(render_markdown(report, chart="chart.png")) + "\n")
    (directory / "results.json").write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n")


def chart_write(report: dict, path: Path) -> None:
    """Draw both orderings (and the baseline) per metric: all queries, and each language of a mixed set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("all queries", report["queries"], report["fulltext"], report["reranked"], report.get("baseline"))]
    if len(report["languages"]) > 1:
        panels += [
            (lang, f["queries"], f["fulltext"], f["reranked"], f.get("baseline"))
            for lang, f in report["languages"].items()
        ]
    figure, axes = plt.subplots(1, len(panels), figsize=(max(7.5, 5.2 * len(panels)), 4.6), squeeze=False, sharey=True)
    labels = [
        METRIC_LABELS[m].replace(" (ceiling)", "").replace("k_initial", str(report["k_initial"])) for m in METRICS
    ]
    positions = range(len(METRICS))
    width = 0.27 if report.get("baseline") else 0.38
    for axis, (title, count, fulltext, reranked, baseline) in zip(axes[0], panels, strict=True):
        bars_of = [("full-text", fulltext, "#8c9bab")]
        if report.get("reranking", True):
            bars_of.append(("reranked", reranked, "#2f6db5"))
        if baseline:
            bars_of.insert(0, (baseline["name"], baseline["metrics"], "#d9a441"))
        offsets = [(i - (len(bars_of) - 1) / 2) * width for i in range(len(bars_of))]
        for offset, (name, values, colour) in zip(offsets, bars_of, strict=True):
            bars = axis.bar(
                [p + offset for p in positions], [values[m] for m in METRICS], width, label=name, color=colour
            )
            axis.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        axis.set_title(f"{title} ({count} queries)", fontsize=10)
        axis.set_xticks(list(positions), labels, rotation=30, ha="right", fontsize=8)
        axis.set_ylim(0, 1.08)
        axis.grid(axis="y", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    info = ModelInfo.from_dict(report["model_info"])
    served = ", ".join((info.languages if info else None) or ["all languages"])
    figure.suptitle(
        f"{report['dataset']}: {report['model']} (reranks {served}), k_initial={report['k_initial']}", fontsize=11
    )
    figure.tight_layout(rect=(0, 0.05, 1, 0.95))
    figure.savefig(path, dpi=90)
    plt.close(figure)
