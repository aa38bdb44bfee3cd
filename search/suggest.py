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
    """Return the optimal-string-alignment distance (a swap counts once), or limit + 1 beyond `limit`.

    Only the band of cells within `limit` of the diagonal is computed (a path outside it has
    more than `limit` edits already): about (2 limit + 1) n cells instead of n squared.
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    a, b = _without_common_ends(a, b)
    beyond = limit + 1
    previous2: list[int] = []
    previous = [j if j <= limit else beyond for j in range(len(b) + 1)]
    for i, char_a in enumerate(a, start=1):
        current = [i if i <= limit else beyond] + [beyond] * len(b)
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            char_b = b[j - 1]
            cost = 0 if char_a == char_b else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
        if min(current) > limit:
            return beyond
        previous2, previous = previous, current
    return min(previous[-1], beyond)


def _without_common_ends(a: str, b: str) -> tuple[str, str]:
    """Return `a` and `b` without the prefix and suffix they share: no edit is needed there."""
    start, shortest = 0, min(len(a), len(b))
    while start < shortest and a[start] == b[start]:
        start += 1
    end = 0
    while end < shortest - start and a[len(a) - 1 - end] == b[len(b) - 1 - end]:
        end += 1
    return a[start : len(a) - end], b[start : len(b) - end]


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
