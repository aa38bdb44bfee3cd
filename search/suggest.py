"""'Did you mean': close words of the library's own vocabulary for the words a query got wrong.

Engine-neutral arithmetic; the vocabulary itself comes from the backend (for PostgreSQL, the BM25
term statistics, so no pg_trgm or fuzzystrmatch is needed: the embedded PostgreSQL has neither).
A word is corrected when the library does not have it, or has it in fewer documents than
RARE_DOCUMENTS while a close word is in at least COMMON_FACTOR times as many.
"""

from __future__ import annotations

# How far a correction may be from the typed word: one edit for short words, two for long ones.
SHORT_WORD_CHARS = 4
MAX_EDITS_SHORT = 1
MAX_EDITS_LONG = 2
# A known word is only "wrong" when it is this rare and the correction this much more common.
RARE_DOCUMENTS = 2
COMMON_FACTOR = 20


def max_edits(word: str) -> int:
    return MAX_EDITS_SHORT if len(word) <= SHORT_WORD_CHARS else MAX_EDITS_LONG


def edit_distance(a: str, b: str, *, limit: int) -> int:
    """Return the optimal-string-alignment distance (a swap counts once), or limit + 1 beyond `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, start=1):
            cost = 0 if char_a == char_b else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def corrections(word: str, df: int, vocabulary: list[tuple[str, int]], *, best: int = 5) -> list[str]:
    """Return up to `best` words of `vocabulary` ((word, df) pairs) worth suggesting for `word`,
    closest first, then most common."""
    limit = max_edits(word)
    found: list[tuple[int, int, str]] = []
    for candidate, candidate_df in vocabulary:
        if candidate == word or candidate_df <= 0:
            continue
        if df and (df >= RARE_DOCUMENTS or candidate_df < df * COMMON_FACTOR):
            continue
        distance = edit_distance(word, candidate, limit=limit)
        if distance <= limit:
            found.append((distance, -candidate_df, candidate))
    return [candidate for _, _, candidate in sorted(found)[:best]]
