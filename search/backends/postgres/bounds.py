"""The full-text engine's work bounds and cost model: every tuning number, each with its reason.

The budgets a deployment may change are settings (SEARCH_EXHAUSTIVE_POSTINGS,
SEARCH_COMMON_TERM_POOL, SEARCH_PACK_*); these are the engine's own, measured or derived once
(docs/benchmarks.md, section 4). The packed scorer's array sizing is in search.backends.packed.
"""

from __future__ import annotations

# --- Planning: which strategy scores a query -------------------------------------------------

# Queries of several common terms are scored exhaustively up to this many times
# SEARCH_EXHAUSTIVE_POSTINGS postings (exact, at most ~0.2 s at 1M documents) before pooling.
COMMON_TERMS_FACTOR = 20
# What one lookup of a pooled document's missing weight costs, in postings read from the term
# index (measured at 100k documents): it decides between pooling and reading every posting.
PROBE_COST = 30
# What scoring a posting from a pack costs, in the same unit (measured at 1M documents): one
# common term is read from its pack rather than pooled when its rare terms' documents would need
# more lookups than that.
PACK_COST = 0.15

# --- Scoring ---------------------------------------------------------------------------------

# The pool of a common term grows this much when the first pool cannot prove the top k exact.
POOL_GROWTH = 4
# Pooled documents whose missing weights are looked up per statement, and at most per search: the
# lookups are primary-key probes, the cost that grows when common terms rarely meet.
FILL_BATCH = 256
FILL_LIMIT = 4096
# Scored from packs, the best documents checked against the query's filters at most (phrases,
# exclusions, a language), best first: beyond, the ranking is of those that passed.
FILTER_LIMIT = 16384
# The first batch so checked is this many times k (most pass: one statement usually does), each
# later batch POOL_GROWTH times the one before.
FILTER_FIRST_BATCH = 4

# --- Vocabulary ------------------------------------------------------------------------------

# Neighbours read per word at most (the most common first): bounds the work of a suggestion.
NEAR_LIMIT = 5000

# --- Index maintenance -----------------------------------------------------------------------

# The first key of the advisory lock that search_bm25_pack takes per collection (the second is
# the collection's id). The SQL function spells it too (search/migrations/0003_packed_postings.py);
# tests/search/test_bm25_pack_lock.py keeps the two equal.
PACK_LOCK_KEY = 2512

# --- Expansion: typos, prefixes and Chinese characters (search.backends.postgres.vocabulary) ---
# Every expansion reads the vocabulary (search_bm25_term) through its (collection, lexeme) index,
# never a whole scan: per query at most EXPANDED_WORDS words, each either English (its 1-edit
# variants, under 54 * TYPO_MAX_CHARS + 25 = 1,321 lookups, and TYPO_SCAN_LIMIT rows) or Chinese
# (PREFIX_SCAN_LIMIT + CHINESE_SCAN_LIMIT rows and 20 lookups), + PREFIX_SCAN_LIMIT rows for the
# last word's completions: under 24,000 index entries in all.
# Measured at a 1M-term vocabulary: docs/benchmarks.md, section 4b.

# Query words expanded at most, the first ones (typos, Chinese): bounds a long question's cost.
EXPANDED_WORDS = 3
# One edit is forgiven from this many letters, two from TYPO_TWO_EDITS_CHARS (Meilisearch's
# defaults): shorter words have too many neighbours one edit away to guess from.
TYPO_MIN_CHARS = 5
TYPO_TWO_EDITS_CHARS = 9
# Longer words are not corrected: their 1-edit variants would pass 1,300 lookups.
TYPO_MAX_CHARS = 24
# Two-edit neighbours are read from the stems sharing the first TYPO_SCAN_PREFIX letters (a range
# of the lexeme index) and of a length within 2 of its own, TYPO_SCAN_LIMIT rows at most,
# compared in Python (10-40 µs each: 3 letters and 2,000 rows cost up to 120 ms at 1M terms); a
# typo among those letters is found at one edit only (by the variants, which cover every position).
TYPO_SCAN_PREFIX = 4
TYPO_SCAN_LIMIT = 500
# Near spellings kept per word, closest then most common first.
TYPO_EXPANSIONS = 3
# The last word is completed from this many letters on (fewer match too much to be a hint).
PREFIX_MIN_CHARS = 3
# Completions read in lexeme order at most, and kept (the most common).
PREFIX_SCAN_LIMIT = 2000
PREFIX_EXPANSIONS = 8
# Chinese words holding a query's characters: the words it begins are read from their own range
# (complete); those holding it elsewhere among the first CHINESE_SCAN_LIMIT CJK lexemes (a
# contiguous range of the index in code-point order: 2 ms for 5,000, 10 ms for 20,000). Kept:
# the most common.
CHINESE_SCAN_LIMIT = 5000
CHINESE_EXPANSIONS = 8
# An expanded word weighs this share of its idf, and never more than this share of the typed
# word's own idf when the library has it: the same document scores lower through an expansion
# than through the word itself, so exact matches rank above near spellings and completions.
EXPANSION_WEIGHT = 0.5
