"""An evaluation's report: the figures of a finished run (its movers, baseline, command line and
machine), and their rendering as report.md, chart.png and results.json.

The `evaluate` command builds a report with these and stores it (evaluation.runs); the staff's
page shows the stored chart. Nothing here runs the site's search or talks to the worker (the
--baseline ranking runs bm25s in this process).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
from pathlib import Path

from django.conf import settings

from evaluation import runner
from evaluation.runner import METRIC_LABELS, METRICS, QueryResult
from worker.protocol import ModelInfo

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


def semantic_lines(semantic: dict | None) -> list[str]:
    """Return report.md's line on the rerank pool: BM25's alone, or fused with semantic candidates."""
    if not semantic:
        return []
    statuses = ", ".join(f"{name or 'none'} {n}" for name, n in semantic["status"].items())
    return [
        "",
        f"Semantic candidates per query: {statuses} (`ok`: the pool fused BM25's candidates with the nearest "
        f"documents by vector, RRF k = {semantic['rrf_k']}; otherwise BM25's alone). Pool documents found by "
        f"meaning alone: {semantic['meaning_candidates']} in all.",
    ]


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
        *semantic_lines(report.get("semantic")),
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
