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
