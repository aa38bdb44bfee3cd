"""Split a document body into chunks a reranker can read whole: pure functions, no ORM.

Chunks follow paragraph and sentence boundaries (Chinese sentence punctuation included), stay
under a token budget, and repeat the previous sentence as a small overlap so that an answer
spanning a boundary is still seen together once.
"""

import math
import re
from dataclasses import dataclass

from documents.textsearch import CJK_RANGES, CJK_RUN

# A sentence ends at Chinese or Western end punctuation (with closing quotes/brackets), at a
# period followed by space, or at a line break.
SENTENCE_END = re.compile(r"[。！？!?；;]+[”’」』）)\]\"']*|\.(?=\s)|\n+")
LATIN_WORD = re.compile(rf"[^\s{CJK_RANGES}]+")
# Sub-word tokenizers split an English word into ~1.3 pieces on average; we budget 1.5 to be safe.
TOKENS_PER_LATIN_WORD = 1.5
# A "word" longer than this is no natural word (a URL, base64, a hex dump, minified code): it
# counts one token per LONG_WORD_CHARS_PER_TOKEN characters, so that a file of one huge line is
# cut into chunks like any other instead of becoming one chunk of megabytes.
LONG_WORD_CHARS = 24
LONG_WORD_CHARS_PER_TOKEN = 4
DEFAULT_OVERLAP_TOKENS = 48


@dataclass(frozen=True)
class ChunkSpan:
    start: int
    end: int
    text: str
    tokens: int


def estimate_tokens(text: str) -> int:
    """Return a conservative token count: one per CJK character, ~1.5 per other word."""
    cjk = sum(len(run) for run in CJK_RUN.findall(text))
    words = LATIN_WORD.findall(text)
    long_chars = sum(len(word) for word in words if len(word) > LONG_WORD_CHARS)
    long_words = sum(1 for word in words if len(word) > LONG_WORD_CHARS)
    short_words = len(words) - long_words
    return cjk + math.ceil(short_words * TOKENS_PER_LATIN_WORD + long_chars / LONG_WORD_CHARS_PER_TOKEN)


def _sentences(body: str) -> list[tuple[int, int]]:
    """Return (start, end) spans of the sentences, whitespace-only spans left out."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in SENTENCE_END.finditer(body):
        end = match.end()
        if body[start:end].strip():
            spans.append((start, end))
        start = end
    if body[start:].strip():
        spans.append((start, len(body)))
    return spans


def _hard_split(body: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """Split one over-long sentence into windows under the budget, at spaces where possible."""
    pieces: list[tuple[int, int]] = []
    position = start
    while position < end:
        cut = position
        step = max(1, max_tokens // 2)
        # Grow the window until it would pass the budget.
        while cut < end and estimate_tokens(body[position : min(end, cut + step)]) <= max_tokens:
            cut = min(end, cut + step)
        if cut == position:
            cut = min(end, position + step)
        if cut < end:
            space = body.rfind(" ", position + 1, cut)
            if space > position + (cut - position) // 2:
                cut = space
        pieces.append((position, cut))
        position = cut
    return pieces


def split_into_chunks(body: str, max_tokens: int, overlap_tokens: int = DEFAULT_OVERLAP_TOKENS) -> list[ChunkSpan]:
    """Return the chunks of `body`, each under `max_tokens`, with offsets into `body`."""
    units: list[tuple[int, int]] = []
    for start, end in _sentences(body):
        if estimate_tokens(body[start:end]) > max_tokens:
            units.extend(_hard_split(body, start, end, max_tokens))
        else:
            units.append((start, end))
    chunks: list[ChunkSpan] = []
    current: list[tuple[int, int]] = []
    current_tokens = 0
    for unit in units:
        unit_tokens = estimate_tokens(body[unit[0] : unit[1]])
        if current and current_tokens + unit_tokens > max_tokens:
            chunks.append(_make_chunk(body, current))
            last = current[-1]
            last_tokens = estimate_tokens(body[last[0] : last[1]])
            # Carry the last sentence over when it is short enough to be an overlap.
            if last_tokens <= overlap_tokens and last_tokens + unit_tokens <= max_tokens:
                current, current_tokens = [last], last_tokens
            else:
                current, current_tokens = [], 0
        current.append(unit)
        current_tokens += unit_tokens
    if current:
        chunks.append(_make_chunk(body, current))
    return chunks


def _make_chunk(body: str, units: list[tuple[int, int]]) -> ChunkSpan:
    start, end = units[0][0], units[-1][1]
    # Trim surrounding whitespace but keep offsets pointing at the trimmed text.
    while start < end and body[start].isspace():
        start += 1
    while end > start and body[end - 1].isspace():
        end -= 1
    text = body[start:end]
    return ChunkSpan(start=start, end=end, text=text, tokens=estimate_tokens(text))
