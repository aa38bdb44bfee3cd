"""Vocabulary: the library's own words near a query's, read from the BM25 term statistics.

Two uses. "Did you mean" corrections (search.suggest holds the engine-neutral arithmetic). And
expansion, where a query word also matches other library words, each weighing less than the
word itself (bounds.EXPANSION_WEIGHT):
- typos: a word the library lacks or barely has (fewer than suggest.RARE_DOCUMENTS documents)
  of TYPO_MIN_CHARS letters or more matches the library's words one edit away (two edits from
  TYPO_TWO_EDITS_CHARS). Its one-edit variants are stemmed by PostgreSQL and looked up, so a typo
  in a suffix still meets the right stem (toxcity -> toxicity -> toxic); two-edit neighbours are
  stems sharing its first letters.
- prefixes: the query's last word also matches the words it begins, its most common completions.
- Chinese: a word of one character, or one the library lacks, matches the library's words that
  hold it (熊 -> 熊猫, 大熊猫) and, for a longer word, the words it holds (竹子 -> 竹). Documents
  are segmented in search mode, so their sub-words are indexed already: this costs the index
  nothing, only a bounded read of the Chinese vocabulary per query word.
No pg_trgm or fuzzystrmatch: the embedded PostgreSQL has neither. Every read is bounded
(search.backends.postgres.bounds).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from django.db import DatabaseError

from documents.textsearch import CJK_RUN, TS_CONFIG, has_cjk, segment_words
from search import suggest
from search.backends.postgres import bounds
from search.backends.postgres.terms import Expansion, ResolvedClause, fetch, resolve
from search.query import Clause, ParsedQuery

logger = logging.getLogger(__name__)

# The vocabulary near one word. English lexemes are stems, so the neighbours are stems of similar
# length sharing the first letter; Chinese words are themselves, so neighbours have the same
# length and share the first or the last character.
NEAR_STEMS_SQL = """
SELECT t.lexeme, t.df FROM search_bm25_term t JOIN search_bm25_collection c ON c.id = t.collection_id
WHERE c.name = %(collection)s AND t.df > 0 AND t.lexeme >= %(low)s AND t.lexeme < %(high)s
  AND length(t.lexeme) BETWEEN %(shortest)s AND %(longest)s
ORDER BY t.df DESC LIMIT %(limit)s
"""
NEAR_CJK_SQL = """
SELECT t.lexeme, t.df FROM search_bm25_term t JOIN search_bm25_collection c ON c.id = t.collection_id
WHERE c.name = %(collection)s AND t.df > 0 AND length(t.lexeme) = %(length)s
  AND (left(t.lexeme, 1) = %(first)s OR right(t.lexeme, 1) = %(last)s)
ORDER BY t.df DESC LIMIT %(limit)s
"""
# The words of one document containing a stem: where the stem's spelling in the library is found.
SURFACE_SQL = """
SELECT d.title || ' ' || left(d.body, 20000) FROM search_bm25_posting p
JOIN search_bm25_term t ON t.id = p.term_id
JOIN search_bm25_collection c ON c.id = t.collection_id
JOIN documents_document d ON d.id = p.document_id
WHERE c.name = %(collection)s AND t.lexeme = %(lexeme)s
ORDER BY p.impact DESC LIMIT 1
"""
ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")


def suggestion(query: ParsedQuery, *, collection: str) -> str | None:
    """Return the query with its unknown or rare words corrected from the library's vocabulary,
    or None when nothing is worth suggesting (SQL: a few statements per word, only for words
    the library lacks or barely has)."""
    words = query_words(query)
    if not words:
        return None
    try:
        resolution = resolve([Clause(text=word) for word in words], collection)
        corrections = {}
        for word, item in zip(words, resolution.clauses, strict=True):
            correction = _correct(word, item, collection)
            if correction:
                corrections[word] = correction
    except DatabaseError:
        logger.warning("no suggestion: the vocabulary could not be read")
        return None
    text = query.text
    for word, correction in corrections.items():
        if has_cjk(word):  # no spaces between Chinese words: replace the text itself
            text = text.replace(word, correction, 1)
        else:
            text = re.sub(rf"(?<![\w-]){re.escape(word)}(?!\w)", correction, text, count=1)
    return text if text != query.text else None


def query_words(query: ParsedQuery) -> list[str]:
    """Return the plain words of a query worth correcting: English words and Chinese words."""
    words: list[str] = []
    for clause in query.scored:
        if clause.phrase:
            continue
        words.extend(ENGLISH_WORD.findall(clause.text))
        for run in CJK_RUN.findall(clause.text):
            words.extend(word for word in segment_words(run) if len(word) >= 2)
    return list(dict.fromkeys(words))


def _correct(word: str, item: ResolvedClause, collection: str) -> str | None:
    if len(item.lexemes) != 1:
        return None  # a stop word, or a word the index splits: nothing one edit away
    lexeme = item.lexemes[0]
    df = next(iter(item.terms.values()), 0)
    if has_cjk(word):
        return _correct_chinese(lexeme, df, collection)
    edits = suggest.max_edits(lexeme)
    params = {
        "collection": collection,
        "low": lexeme[0],
        "high": chr(ord(lexeme[0]) + 1),
        "shortest": len(lexeme) - edits,
        "longest": len(lexeme) + edits,
        "limit": bounds.NEAR_LIMIT,
    }
    rows = fetch(NEAR_STEMS_SQL, params)
    # Stems are compared first (cheap, one per vocabulary word); the few closest are then
    # spelled as the library spells them, and the spelling closest to what was typed wins.
    typed = word.lower()
    spelled = []
    for rank, stem in enumerate(suggest.corrections(lexeme, df, rows)):
        for form in spellings(stem, collection):
            distance = suggest.edit_distance(typed, form, limit=max(len(typed), len(form)))
            spelled.append((distance, rank, form))
    return min(spelled)[2] if spelled else None


def _correct_chinese(lexeme: str, df: int, collection: str) -> str | None:
    params = {"collection": collection, "length": len(lexeme), "first": lexeme[0], "last": lexeme[-1]}
    rows = fetch(NEAR_CJK_SQL, {**params, "limit": bounds.NEAR_LIMIT})
    found = suggest.corrections(lexeme, df, rows, best=1)
    return found[0] if found else None


def spellings(stem: str, collection: str) -> set[str]:
    """Return how the library spells words with this stem (one statement: one document's words)."""
    from search.highlight import stem as english_stem

    rows = fetch(SURFACE_SQL, {"collection": collection, "lexeme": stem})
    if not rows:
        return set()
    return {word.lower() for word in ENGLISH_WORD.findall(rows[0][0]) if english_stem(word) == stem}


# --- Expansion -------------------------------------------------------------------------------

TYPO = "typo"
PREFIX = "prefix"
CHINESE = "chinese"
TYPO_SCAN = "typo-scan"  # two-edit neighbours, compared here (a TYPO once kept)
LETTERS = "abcdefghijklmnopqrstuvwxyz"
ASCII_WORD = re.compile(r"[a-z]+")
# The CJK lexemes: CJK_RANGES (documents.textsearch) in code-point order, one range of the index.
CJK_LOW, CJK_HIGH = "\u3400", "\ufb00"
# One statement for every word of a query that is expanded (search.backends.postgres.terms reads
# the query's own words first; this runs only when some word is lacking or rare). A word's
# spellings travel as one space-separated string: as an array, psycopg takes ~10 ms to quote them.
# - spellings one edit away, stemmed by PostgreSQL and looked up (one index probe per stem);
# - ranges of the lexeme index (a prefix, or the CJK lexemes), the first `scan` lexemes in index
#   order at most, whatever the vocabulary's size, keeping the `keep` most common holding `part`;
# - lexemes looked up as they are (the words a Chinese word holds).
EXPAND_SQL = """
WITH variants AS (
    SELECT l.clause, %(typo)s AS kind, v.word, t.id, t.lexeme, t.df
    FROM unnest(%(variant_lists)s::text[], %(variant_clauses)s::int[]) AS l(words, clause)
    CROSS JOIN LATERAL unnest(string_to_array(l.words, ' ')) WITH ORDINALITY AS v(word, ord)
    CROSS JOIN LATERAL unnest(to_tsvector(%(config)s::regconfig, v.word)) AS s
    JOIN search_bm25_term t ON t.collection_id = %(collection_id)s AND t.lexeme = s.lexeme AND t.df > 0
    ORDER BY l.clause, v.ord
), ranges AS (
    SELECT r.clause, r.kind, NULL::text AS word, x.id, x.lexeme, x.df
    FROM unnest(%(range_clauses)s::int[], %(range_kinds)s::text[], %(range_lows)s::text[], %(range_highs)s::text[],
                %(range_parts)s::text[], %(range_scans)s::int[], %(range_keeps)s::int[],
                %(range_shortest)s::int[], %(range_longest)s::int[])
         AS r(clause, kind, low, high, part, scan, keep, shortest, longest)
    CROSS JOIN LATERAL (
        SELECT y.id, y.lexeme, y.df FROM (
            SELECT t.id, t.lexeme, t.df FROM search_bm25_term t
            WHERE t.collection_id = %(collection_id)s AND t.lexeme >= r.low AND t.lexeme < r.high
            ORDER BY t.lexeme LIMIT r.scan
        ) y
        WHERE y.df > 0 AND strpos(y.lexeme, r.part) > 0 AND length(y.lexeme) BETWEEN r.shortest AND r.longest
        ORDER BY y.df DESC, y.lexeme LIMIT r.keep
    ) x
), exact AS (
    SELECT e.clause, e.kind, NULL::text AS word, t.id, t.lexeme, t.df
    FROM unnest(%(exact_clauses)s::int[], %(exact_kinds)s::text[], %(exact_lexemes)s::text[]) AS e(clause, kind, lexeme)
    JOIN search_bm25_term t ON t.collection_id = %(collection_id)s AND t.lexeme = e.lexeme AND t.df > 0
)
SELECT f.clause, f.kind, f.word, f.id, f.lexeme, f.df,
       EXISTS (SELECT 1 FROM search_bm25_pack k WHERE k.term_id = f.id) AS packed
FROM (SELECT * FROM variants UNION ALL SELECT * FROM ranges UNION ALL SELECT * FROM exact) f
"""


@dataclass
class _Found:
    """A library word one clause may be expanded to, as the statement returned it."""

    kind: str
    spelled: str | None
    term_id: int
    lexeme: str
    df: int
    packed: bool


@dataclass
class _Request:
    """What the expansion statement is asked for, per clause (by its position among the scored)."""

    variants: list[tuple[int, list[str]]] = field(default_factory=list)  # (clause, its spellings)
    ranges: list[tuple[int, str, str, str, str, int, int, int, int]] = field(default_factory=list)  # as range()
    exact: list[tuple[int, str, str]] = field(default_factory=list)  # (clause, kind, lexeme)

    def __bool__(self) -> bool:
        return bool(self.variants or self.ranges or self.exact)

    def range(
        self, clause: int, kind: str, low: str, high: str, part: str, *, scan: int, keep: int, lengths=(0, 1000)
    ) -> None:
        """Ask for the `keep` most common lexemes holding `part`, of `lengths` (shortest, longest), among
        the first `scan` in [low, high)."""
        self.ranges.append((clause, kind, low, high, part, scan, keep, *lengths))

    def prefix(
        self, clause: int, kind: str, prefix: str, part: str, *, scan: int, keep: int, lengths=(0, 1000)
    ) -> None:
        """Ask for the `keep` most common lexemes holding `part` among the first `scan` beginning `prefix`."""
        self.range(clause, kind, prefix, _after(prefix), part, scan=scan, keep=keep, lengths=lengths)

    def params(self, collection_id: int) -> dict:
        ranges = list(zip(*self.ranges, strict=True)) or [()] * 9
        clauses, kinds, lows, highs, parts, scans, keeps, shortest, longest = (list(column) for column in ranges)
        exact = list(zip(*self.exact, strict=True)) or [()] * 3
        return {
            "collection_id": collection_id,
            "config": TS_CONFIG,
            "typo": TYPO,
            "variant_clauses": [clause for clause, _ in self.variants],
            "variant_lists": [" ".join(words) for _, words in self.variants],
            "range_clauses": clauses,
            "range_kinds": kinds,
            "range_lows": lows,
            "range_highs": highs,
            "range_parts": parts,
            "range_scans": scans,
            "range_keeps": keeps,
            "range_shortest": shortest,
            "range_longest": longest,
            "exact_clauses": list(exact[0]),
            "exact_kinds": list(exact[1]),
            "exact_lexemes": list(exact[2]),
        }


def _after(prefix: str) -> str:
    """Return the first string after every string beginning with `prefix` (code-point order)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def expand(query: ParsedQuery, scored: list[ResolvedClause], *, collection_id: int, collection: str) -> list[str]:
    """Add to each scored clause the library words it also matches, when it is a word the
    library lacks or barely has (near spellings, Chinese words holding it, the last word's
    completions); return the notice naming the near spellings and Chinese words included.

    SQL: nothing when every word is known; else one statement (EXPAND_SQL, bounded: see
    search.backends.postgres.bounds), and one per two-edit spelling named in the notice.
    """
    request, asked = _Request(), 0
    for position, item in enumerate(scored):
        if asked < bounds.EXPANDED_WORDS and (
            _ask_typos(request, position, item) or _ask_chinese(request, position, item)
        ):
            asked += 1
    if scored and _typed_last(query, scored[-1]):
        _ask_completions(request, len(scored) - 1, scored[-1])
    if not request:
        return []
    found: dict[int, list[_Found]] = {}
    for clause, kind, spelled, term_id, lexeme, df, is_packed in fetch(EXPAND_SQL, request.params(collection_id)):
        found.setdefault(clause, []).append(_Found(kind, spelled, term_id, lexeme, df, is_packed))
    for position, rows in found.items():
        item = scored[position]
        _add(item, [*_typos(item, rows), *_chinese(item, rows), *_completions(item, rows)])
    return _notices(scored, collection)


def _add(item: ResolvedClause, found: list[_Found]) -> None:
    for row in found:
        if row.term_id in item.terms or row.term_id in item.expansions:
            continue
        kind = TYPO if row.kind == TYPO_SCAN else row.kind
        item.expansions[row.term_id] = Expansion(row.term_id, row.lexeme, row.df, kind, row.spelled or row.lexeme)
        if row.packed:
            item.packed.add(row.term_id)


def _own_df(item: ResolvedClause) -> int:
    return next(iter(item.terms.values()), 0)


def _rare(item: ResolvedClause) -> bool:
    """Return whether the clause's word is one the library lacks or barely has."""
    return _own_df(item) < suggest.RARE_DOCUMENTS


def _plain_word(item: ResolvedClause) -> str | None:
    """Return the clause's word in lower case when it is one plain English word, else None."""
    word = item.clause.text.lower()
    if item.clause.phrase or len(item.lexemes) != 1 or not ASCII_WORD.fullmatch(word):
        return None
    return word


def _chinese_word(item: ResolvedClause) -> str | None:
    """Return the clause's Chinese word when it is one, else None."""
    if item.clause.phrase or len(item.lexemes) != 1 or not CJK_RUN.fullmatch(item.lexemes[0]):
        return None
    return item.lexemes[0]


def one_edit(word: str) -> list[str]:
    """Return every spelling one edit from `word` (a deletion, swap, replacement or insertion of a
    letter): 54 n + 25 at most for n letters."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = [a + b[1:] for a, b in splits if b]
    swaps = [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1]
    replaces = [a + c + b[1:] for a, b in splits if b for c in LETTERS if c != b[0]]
    inserts = [a + c + b for a, b in splits for c in LETTERS]
    return list(dict.fromkeys(deletes + swaps + replaces + inserts))


def _ask_typos(request: _Request, position: int, item: ResolvedClause) -> bool:
    """Ask for the library words near a word it lacks or barely has; return whether asked."""
    word = _plain_word(item)
    if word is None or not bounds.TYPO_MIN_CHARS <= len(word) <= bounds.TYPO_MAX_CHARS or not _rare(item):
        return False
    request.variants.append((position, one_edit(word)))
    if len(word) >= bounds.TYPO_TWO_EDITS_CHARS:
        lexeme = item.lexemes[0]
        lengths = (len(lexeme) - 2, len(lexeme) + 2)
        scan = bounds.TYPO_SCAN_LIMIT
        request.prefix(
            position, TYPO_SCAN, lexeme[: bounds.TYPO_SCAN_PREFIX], "", scan=scan, keep=scan, lengths=lengths
        )
    return True


def _typos(item: ResolvedClause, rows: list[_Found]) -> list[_Found]:
    """Return the closest, then most common, near spellings of the clause's word."""
    lexeme, df = item.lexemes[0], _own_df(item)
    # A word the library has (rarely) yields only to words many times more common.
    rows = [row for row in rows if row.lexeme != lexeme and (not df or row.df >= df * suggest.COMMON_FACTOR)]
    edits: dict[int, tuple[int, _Found]] = {}
    for row in rows:
        if row.kind == TYPO:
            edits.setdefault(row.term_id, (1, row))  # the first spelling that reached the term names it
    for row in rows:
        if row.kind == TYPO_SCAN and row.term_id not in edits:
            distance = suggest.edit_distance(lexeme, row.lexeme, limit=2)
            if distance <= 2:
                edits[row.term_id] = (distance, row)
    kept = list(edits.values())
    kept.sort(key=lambda entry: (entry[0], -entry[1].df, entry[1].lexeme))
    return [row for _, row in kept[: bounds.TYPO_EXPANSIONS]]


def _typed_last(query: ParsedQuery, item: ResolvedClause) -> bool:
    """Return whether the clause is the word the query ends with (the one still being typed)."""
    return not item.clause.phrase and query.text.rstrip().endswith(item.clause.text)


def _ask_completions(request: _Request, position: int, item: ResolvedClause) -> None:
    """Ask for the most common library words that a last word the library lacks or barely has begins."""
    word = _plain_word(item)
    if word is not None and len(word) >= bounds.PREFIX_MIN_CHARS and _rare(item):
        keep = bounds.PREFIX_EXPANSIONS + 1  # the word itself may be among them
        request.prefix(position, PREFIX, word, word, scan=bounds.PREFIX_SCAN_LIMIT, keep=keep)


def _completions(item: ResolvedClause, rows: list[_Found]) -> list[_Found]:
    found = [row for row in rows if row.kind == PREFIX and row.lexeme != item.lexemes[0]]
    return found[: bounds.PREFIX_EXPANSIONS]


def _ask_chinese(request: _Request, position: int, item: ResolvedClause) -> bool:
    """Ask for the Chinese words holding a one-character word, or one the library lacks or barely
    has, and the words such a longer word holds; return whether asked."""
    word = _chinese_word(item)
    if word is None or (len(word) > 1 and not _rare(item)):
        return False
    keep = bounds.CHINESE_EXPANSIONS
    request.prefix(position, CHINESE, word, word, scan=bounds.PREFIX_SCAN_LIMIT, keep=keep)
    request.range(position, CHINESE, CJK_LOW, CJK_HIGH, word, scan=bounds.CHINESE_SCAN_LIMIT, keep=keep)
    if len(word) > 1:
        n = len(word)
        parts = {word[i:j] for i in range(n) for j in range(i + 1, n + 1) if j - i < n}
        request.exact.extend((position, CHINESE, part) for part in sorted(parts))
    return True


def _chinese(item: ResolvedClause, rows: list[_Found]) -> list[_Found]:
    unique = {row.term_id: row for row in rows if row.kind == CHINESE and row.lexeme != item.lexemes[0]}
    best = sorted(unique.values(), key=lambda row: (-row.df, row.lexeme))
    return best[: bounds.CHINESE_EXPANSIONS]


def _notices(scored: list[ResolvedClause], collection: str) -> list[str]:
    """Return the notice naming the near spellings and Chinese words included, if any."""
    names: list[str] = []
    for item in scored:
        for expansion in item.expansions.values():
            if expansion.kind == PREFIX:
                continue  # completions are what typing means: no notice
            name = expansion.spelled
            if expansion.kind == TYPO and name == expansion.lexeme:
                name = _closest_spelling(item.clause.text.lower(), expansion.lexeme, collection)
            names.append(name)
    names = list(dict.fromkeys(names))
    return [f"Including results for {', '.join(names)}."] if names else []


def _closest_spelling(typed: str, stem: str, collection: str) -> str:
    """Return the library's spelling of `stem` closest to what was typed (one statement)."""
    forms = spellings(stem, collection)
    if not forms:
        return stem
    return min(forms, key=lambda form: (suggest.edit_distance(typed, form, limit=max(len(typed), len(form))), form))
