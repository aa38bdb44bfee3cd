"""Reranker throughput: the worker's batching path vs a plain CrossEncoder.predict loop.

Same process, same model object, same pairs, same max_length; for each concurrency level c,
c searches of K documents arrive together:
- plain: `model.predict(pairs)` for one search after the other (what a solo worker does);
- before: the previous worker code, `Reranker.score_groups` one search after the other;
- batched: c searches sent at once by a pool of threads that lives across rounds (as the worker's task threads do);
- batched-bf16 (optional): the same with the model in bfloat16, with ranking agreement vs fp32.
The variants run in turn for each level, so their ratios come from the same minutes.

    .venv/bin/python -m bench.reranker_throughput --concurrency 1 4 16 --output /tmp/rt.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import TINY_MODEL, machine, sample_searches, write_json


def plain_loop(model, searches) -> float:
    """Return the seconds a plain predict loop takes over `searches` (default batch size 32)."""
    started = time.perf_counter()
    for query, groups in searches:
        model.predict([(query, text) for group in groups for text in group], show_progress_bar=False)
    return time.perf_counter() - started


def plain_padding_share(model, searches, batch_size: int = 32) -> float:
    """Return the share of padded tokens predict computes: it sorts by characters, not tokens."""
    real = padded = 0
    for query, groups in searches:
        pairs = [(query, text) for group in groups for text in group]
        lengths = [
            len(ids)
            for ids in model.tokenizer(
                [q for q, _ in pairs],
                [t for _, t in pairs],
                truncation="longest_first",
                max_length=model.max_seq_length,
            )["input_ids"]
        ]
        order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
        for start in range(0, len(order), batch_size):
            batch = [lengths[i] for i in order[start : start + batch_size]]
            real += sum(batch)
            padded += len(batch) * max(batch)
    return 1 - real / padded


def before_loop(reranker, searches) -> tuple[float, list[list[float]]]:
    """Return (seconds, scores per search) of the previous worker code, one search at a time."""
    started = time.perf_counter()
    scores = [reranker.score_groups(query, groups)[0] for query, groups in searches]
    return time.perf_counter() - started, scores


def batched(engine, searches, pool: ThreadPoolExecutor) -> tuple[float, list[list[float]], dict]:
    """Return (seconds, scores per search, pass statistics), each search sent by a thread of `pool`.

    The pool lives across rounds, as the worker's task threads do (each keeps its tokenizer copy).
    """
    before = (engine.stats.real_tokens, engine.stats.padded_tokens, engine.stats.passes)

    def one(search) -> list[float]:
        query, groups = search
        return engine.score_groups(query, groups, deadline=time.monotonic() + 3600).scores

    started = time.perf_counter()
    results = list(pool.map(one, searches))
    seconds = time.perf_counter() - started
    real = engine.stats.real_tokens - before[0]
    padded = engine.stats.padded_tokens - before[1]
    passes = engine.stats.passes - before[2]
    return seconds, results, {"padding_share": round(1 - real / padded, 4) if padded else 0.0, "passes": passes}


def agreement(reference: list[list[float]], other: list[list[float]], top: int = 10) -> dict:
    """Return how far `other` ranks documents like `reference`: top-k overlap, same top-1, max diff."""
    overlaps, same_first, diffs = [], 0, []
    for ref, got in zip(reference, other, strict=True):
        ref_top = sorted(range(len(ref)), key=lambda i: -ref[i])[:top]
        got_top = sorted(range(len(got)), key=lambda i: -got[i])[:top]
        overlaps.append(len(set(ref_top) & set(got_top)) / len(ref_top))
        same_first += ref_top[0] == got_top[0]
        diffs.append(max(abs(a - b) for a, b in zip(ref, got, strict=True)))
    return {
        f"top{top}_overlap": round(sum(overlaps) / len(overlaps), 3),
        "same_top1": f"{same_first}/{len(reference)}",
        "max_abs_score_diff": float(f"{max(diffs):.2e}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(TINY_MODEL), help="CrossEncoder directory (default: the tiny one)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--k", type=int, default=50, help="documents per search")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-tokens", type=int, default=2048, help="the CPU default of the worker")
    parser.add_argument("--batch-pairs", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    parser.add_argument("--bf16", action="store_true", help="also run the batching path in bfloat16")
    parser.add_argument("--skip-before", action="store_true", help="leave out the previous worker code")
    parser.add_argument("--rounds", type=int, default=1, help="turns per level (the median is reported)")
    parser.add_argument("--output")
    args = parser.parse_args()

    import torch

    from worker.batching import BatchingReranker
    from worker.reranker import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    common = {"device": "cpu", "max_length": args.max_length, "batch_size": args.batch_pairs}
    reranker = load_model(args.model, **common)
    engine = BatchingReranker(
        reranker, max_batch_tokens=args.batch_tokens, max_batch_pairs=args.batch_pairs, max_queued_pairs=10**6
    )
    engine_bf16 = None
    if args.bf16:
        fast = load_model(args.model, cpu_dtype="bfloat16", **common)
        engine_bf16 = BatchingReranker(
            fast, max_batch_tokens=args.batch_tokens, max_batch_pairs=args.batch_pairs, max_queued_pairs=10**6
        )
    # Warm-up: first calls allocate and pick kernels.
    pool = ThreadPoolExecutor(max_workers=max(args.concurrency))
    warm = sample_searches(max(args.concurrency), k=4, chunk_tokens=args.max_length - 64, seed=0)
    plain_loop(reranker.model, warm)
    batched(engine, warm, pool)
    if engine_bf16:
        batched(engine_bf16, warm, pool)

    rows = []
    for level in args.concurrency:
        searches = sample_searches(level, k=args.k, chunk_tokens=args.max_length - 64, seed=level)
        pairs = sum(len(group) for _, groups in searches for group in groups)
        row: dict = {"concurrency": level, "searches": level, "pairs": pairs, "rounds": args.rounds}
        row["plain_padding_share"] = round(plain_padding_share(reranker.model, searches), 4)
        rates: dict[str, list[float]] = {"plain": [], "before": [], "batched": [], "bf16": []}
        for _ in range(args.rounds):  # the variants take turns, so drift hits them alike
            rates["plain"].append(pairs / plain_loop(reranker.model, searches))
            reference = None
            if not args.skip_before:
                before_s, reference = before_loop(reranker, searches)
                rates["before"].append(pairs / before_s)
            seconds, scores, stats = batched(engine, searches, pool)
            rates["batched"].append(pairs / seconds)
            row["batched_padding_share"] = stats["padding_share"]
            row["batched_passes"] = stats["passes"]
            if reference:
                row["batched_agreement_vs_before"] = agreement(reference, scores)
            if engine_bf16:
                seconds, fast_scores, _ = batched(engine_bf16, searches, pool)
                rates["bf16"].append(pairs / seconds)
                row["bf16_agreement_vs_fp32"] = agreement(scores, fast_scores)
        for name, values in rates.items():
            if values:
                row[f"{name}_pairs_per_s"] = round(statistics.median(values), 2)
                row[f"{name}_per_round"] = [round(value, 2) for value in values]
        for name in ("before", "batched", "bf16"):
            if rates[name]:
                row[f"{name}_vs_plain"] = round(row[f"{name}_pairs_per_s"] / row["plain_pairs_per_s"], 2)
        rows.append(row)
        print(row, flush=True)
    write_json(
        args.output,
        {
            "benchmark": "reranker_throughput",
            "machine": machine(),
            "model": args.model,
            "k": args.k,
            "max_length": args.max_length,
            "batch_tokens": args.batch_tokens,
            "batch_pairs": args.batch_pairs,
            "torch_threads": torch.get_num_threads(),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
