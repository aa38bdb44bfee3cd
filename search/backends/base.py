"""The candidate-backend protocol: what a full-text engine gives search_run, whatever engine it is.

A backend finds the top-k candidates for a parsed query in one collection and keeps its index in
step with the library through the index hooks (documents.index_hooks). The PostgreSQL backend
(search.backends.postgres) is the one we ship; an OpenSearch or Elasticsearch backend would be one
more module implementing the same four methods, named by the SEARCH_BACKEND setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    snippet: str = ""


@dataclass
class CandidateSet:
    """The candidates, best first, and what the page should know about how they were found."""

    candidates: list[Candidate] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # e.g. a query of only stop words
    exact: bool = True  # False when a very common term's documents were only partly scored
    unknown_terms: int = 0  # query words the collection does not have (a "did you mean" may help)
    known_terms: int = 0  # query words the collection has
    # Library words matched besides the query's own (near spellings, completions, Chinese words):
    # where passages and highlights should look too.
    expanded_words: list[str] = field(default_factory=list)


class SearchBackend(Protocol):
    def candidates(
        self,
        query: ParsedQuery,
        *,
        k: int,
        collection: str,
        languages: list[str] | None = None,
        expand: bool = False,
    ) -> CandidateSet:
        """Return up to `k` candidates for `query` in `collection`, best first (an empty query: none);
        with `languages`, only documents in those languages. With `expand`, query words also match
        near spellings, the last word its completions, Chinese characters the words holding them,
        each below the word itself, with a notice naming the near spellings matched.

        Raises CandidatesUnavailable when the engine cannot answer.
        """

    def suggest(self, query: ParsedQuery, *, collection: str) -> str | None:
        """Return a corrected query built from the library's own vocabulary, or None."""

    def index_documents(self, *, changed: list[int], deleted: list[int], collection: str | None) -> None:
        """Bring the index in step after a committed write (called by documents.index_hooks)."""

    def rebuild(self, *, collection: str | None = None) -> int:
        """Rebuild the index of one collection (or all) from the documents; return documents indexed."""
