"""The candidate-backend protocol: what a full-text engine gives search_run, whatever engine it is.

A backend finds the top-k candidates for a parsed query in one collection and keeps its index in
step with the library through the index hooks (documents.index_hooks). The PostgreSQL backend
(search.backends.postgres) is the one we ship; an OpenSearch or Elasticsearch backend would be one
more module implementing the same four methods, named by the SEARCH_BACKEND setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from search.query import ParsedQuery


class CandidatesUnavailable(Exception):
    """The engine cannot answer now (down, unreachable, timed out); search pages show a 503."""


@dataclass
class Candidate:
    document_id: int
    title: str
    language: str
    source: str
    score: float  # the engine's relevance score (BM25 for PostgreSQL); higher is better
    content_hash: str = ""  # the document's content version (keys the rerank cache)
    chunks: list[str] = field(default_factory=list)  # texts sent to the reranker (search.passages)
    chunk_ordinals: list[int] = field(default_factory=list)
    chunk_ids: list[int] = field(default_factory=list)  # documents.Chunk ids of `chunks` (their stored vectors)
    snippet: str = ""
    # Found by meaning (search.semantic): the ordinals of its chunks nearest the query, which
    # the reranker reads whatever their words; empty for a candidate the full-text engine found.
    near_ordinals: list[int] = field(default_factory=list)


@dataclass
class CandidateSet:
    """The candidates, best first, and what the page should know about how they were found."""

    candidates: list[Candidate] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # e.g. a query of only stop words
    exact: bool = True  # False when a very common term's documents were only partly scored
    unknown_terms: int = 0  # query words the collection does not have (a "did you mean" may help)
    stood_in_terms: int = 0  # query words the collection lacks, matched through near spellings or completions
    known_terms: int = 0  # query words the collection has
    # Library words matched besides the query's own (near spellings, completions, Chinese words):
    # where passages and highlights should look too.
    expanded_words: list[str] = field(default_factory=list)
    relaxed: bool = False  # required phrases no document has were relaxed to their words


@dataclass(frozen=True)
class Narrowing:
    """Facet filters beside the language: one source, and documents added since a moment."""

    source: str | None = None
    added_since: datetime | None = None

    def __bool__(self) -> bool:
        return self.source is not None or self.added_since is not None


@dataclass
class MatchCount:
    """How many documents a query matches, whatever the rerank pool, and its facets' counts.

    Each facet is counted under the other facets' filters, not its own (a chip's count is what
    choosing it would give), as Algolia's and Meilisearch's facets are.
    """

    total: int = 0  # under every filter
    exact: bool = True  # False: estimated from a sample of the query's postings ("about")
    languages: dict[str, int] = field(default_factory=dict)  # document language -> count
    sources: list[tuple[str, int]] = field(default_factory=list)  # the most frequent sources, most first
    added: dict[str, int] = field(default_factory=dict)  # "day", "week", ... -> count added within it
    postings: int = 0  # postings of the query's terms (what an exact count reads)


class SearchBackend(Protocol):
    def candidates(
        self,
        query: ParsedQuery,
        *,
        k: int,
        collection: str,
        languages: list[str] | None = None,
        expand: bool = False,
        narrowing: Narrowing | None = None,
    ) -> CandidateSet:
        """Return up to `k` candidates for `query` in `collection`, best first (an empty query: none);
        with `languages`, only documents in those languages. With `expand`, query words also match
        near spellings, the last word its completions, Chinese characters the words holding them,
        each below the word itself, with a notice naming the near spellings matched. With
        `narrowing`, only documents of that source or added since then.

        Raises CandidatesUnavailable when the engine cannot answer.
        """

    def scores(
        self,
        query: ParsedQuery,
        *,
        ids: list[int],
        collection: str,
        languages: list[str] | None = None,
        expand: bool = False,
        narrowing: Narrowing | None = None,
    ) -> dict[int, float]:
        """Return the score `candidates` would give each of `ids` that matches `query`, at any depth
        (a document found by meaning alone, past the candidates read); one that does not match is
        left out. Optional: a backend without it gives such documents 0 (search.backends.score_documents).

        Raises CandidatesUnavailable when the engine cannot answer.
        """

    def count(
        self,
        query: ParsedQuery,
        *,
        collection: str,
        languages: list[str] | None = None,
        narrowing: Narrowing | None = None,
        since: dict[str, datetime] | None = None,
        expand: bool = False,
    ) -> MatchCount:
        """Return how many documents match `query` (the same matching as `candidates`, to any
        depth) under the filters, with the facets' counts; `since` names the date buckets."""

    def suggest(self, query: ParsedQuery, *, collection: str) -> str | None:
        """Return a corrected query built from the library's own vocabulary, or None."""

    def index_documents(self, *, changed: list[int], deleted: list[int], collection: str | None) -> None:
        """Bring the index in step after a committed write (called by documents.index_hooks)."""

    def rebuild(self, *, collection: str | None = None) -> int:
        """Rebuild the index of one collection (or all) from the documents; return documents indexed."""
