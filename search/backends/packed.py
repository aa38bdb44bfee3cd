"""BM25 over packed postings (search.models.Bm25Pack), scored in numpy: several common terms, exactly.

A query of two or more very common terms has no shortcut to its exact top k: BM25 saturates, so
the best documents hold every term at ordinary counts and sit deep in each term's postings. Every
posting must be scored, and row by row in SQL that is some 0.2 s for 350,000 postings at a
million documents. A term's pack holds the same postings as five byte strings (document ids in
ascending order, title and body counts, title and body lengths), so one statement returns each
term as a handful of values and numpy scores them all in a few milliseconds.

A pack is a snapshot. Documents written since (search_bm25_change, kept by triggers) are read
live: their packed postings are dropped and their current postings come from the posting
table, so the scores are those of the exhaustive SQL over the live index, to the last bit (the
same formula, evaluated in the same order, summed in the same term order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg

# One statement: the packs of the packed terms; the live postings of the terms without a pack and
# of every changed document (a primary-key read per changed document); the changed documents.
# Live postings come packed the same way, in no particular order (the aggregates of one group
# all see its rows in the same order, so the five strings stay aligned; the sums per document do
# not depend on it).
PACK_READ = """
WITH changed AS (
    SELECT DISTINCT document_id FROM search_bm25_change WHERE collection_id = %(collection_id)s
), live AS (
    SELECT p.term_id, p.document_id, p.tf_title, p.tf_body, p.title_tokens, p.body_tokens
    FROM unnest(%(unpacked)s::bigint[]) AS q(term_id)
    CROSS JOIN LATERAL (SELECT * FROM search_bm25_posting x WHERE x.term_id = q.term_id OFFSET 0) p
    UNION ALL
    SELECT p.term_id, p.document_id, p.tf_title, p.tf_body, p.title_tokens, p.body_tokens
    FROM search_bm25_posting p
    WHERE p.document_id IN (SELECT document_id FROM changed) AND p.term_id = ANY(%(packed)s::bigint[])
)
SELECT term_id, documents, tf_title, tf_body, title_tokens, body_tokens, false AS live
FROM search_bm25_pack WHERE term_id = ANY(%(packed)s::bigint[]) AND collection_id = %(collection_id)s
UNION ALL
SELECT term_id, string_agg(int8send(document_id), ''::bytea), string_agg(int2send(tf_title), ''::bytea),
       string_agg(int2send(tf_body), ''::bytea), string_agg(int4send(title_tokens), ''::bytea),
       string_agg(int4send(body_tokens), ''::bytea), true
FROM live GROUP BY term_id
UNION ALL
SELECT NULL, string_agg(int8send(document_id), ''::bytea), NULL, NULL, NULL, NULL, true FROM changed
"""
# Document ids below DENSE_IDS times the postings read, plus DENSE_IDS_FLOOR, are summed in a
# dense array indexed by id (bincount: one float per id, 16 MB for the floor's 2 million ids);
# sparser ids are first mapped to their ranks (a sort, slower than the array it saves).
DENSE_IDS = 8
DENSE_IDS_FLOOR = 2_000_000


class PackMissing(Exception):
    """A pack the plan counted on is gone (taken again, or dropped by a rebuild, in between)."""


@dataclass
class Postings:
    """One term's postings as arrays, a document at most once (packs: in ascending document order)."""

    documents: np.ndarray
    tf_title: np.ndarray
    tf_body: np.ndarray
    title_tokens: np.ndarray
    body_tokens: np.ndarray

    @classmethod
    def unpack(cls, documents, tf_title, tf_body, title_tokens, body_tokens) -> Postings:
        return cls(
            np.frombuffer(documents, dtype=">i8").astype(np.int64),
            np.frombuffer(tf_title, dtype=">i2").astype(np.float64),
            np.frombuffer(tf_body, dtype=">i2").astype(np.float64),
            np.frombuffer(title_tokens, dtype=">i4").astype(np.float64),
            np.frombuffer(body_tokens, dtype=">i4").astype(np.float64),
        )

    def without(self, documents: np.ndarray) -> Postings:
        keep = ~np.isin(self.documents, documents, assume_unique=True)
        return Postings(*(values[keep] for values in self.__dict__.values()))

    def weights(self, *, avg_title: float, avg_body: float, k1: float, b: float, title_weight: float) -> np.ndarray:
        """BM25F without the idf, exactly as search_bm25_weight (search/migrations/0002) computes it."""
        with np.errstate(divide="ignore", invalid="ignore"):  # a length of 0 at b = 1: the SQL's CASE
            title_norm = 1 - b + b * self.title_tokens / max(avg_title, 1e-9)
            body_norm = 1 - b + b * self.body_tokens / max(avg_body, 1e-9)
            title = np.where(self.tf_title > 0, title_weight * self.tf_title / title_norm, 0.0)
            body = np.where(self.tf_body > 0, self.tf_body / body_norm, 0.0)
        return (k1 + 1) * (1 - k1 / (k1 + title + body))


def read(connection, params: dict) -> dict[int, Postings]:
    """Return every query term's postings, live where documents changed since the packs (one statement).

    `params` name the terms to read from packs ("packed") and whole from the posting table
    ("unpacked"), and the collection ("collection_id"). The statement runs on the Django
    connection's own psycopg connection (its transaction), in binary: the packs arrive as their
    bytes, a quarter of the time of Django's text results, which spell bytes in hex.
    """
    packed, unpacked = params["packed"], params["unpacked"]
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(PACK_READ, params, binary=True)
        rows = cursor.fetchall()
    packs, live, changed = {}, {}, np.empty(0, dtype=np.int64)
    for term_id, *arrays, is_live in rows:
        if term_id is None:
            if arrays[0] is not None:
                changed = np.frombuffer(arrays[0], dtype=">i8").astype(np.int64)
        elif is_live:
            live[term_id] = Postings.unpack(*arrays)
        else:
            packs[term_id] = Postings.unpack(*arrays)
    if set(packs) != set(packed):
        raise PackMissing(f"packs of terms {sorted(set(packed) - set(packs))} are gone")
    found = {}
    for term_id in [*packed, *unpacked]:
        parts = []
        if term_id in packs:
            parts.append(packs[term_id].without(changed) if changed.size else packs[term_id])
        if term_id in live:
            parts.append(live[term_id])
        if parts:
            found[term_id] = parts[0] if len(parts) == 1 else _concatenate(parts)
    return found


def _concatenate(parts: list[Postings]) -> Postings:
    columns = zip(*(part.__dict__.values() for part in parts), strict=True)
    return Postings(*(np.concatenate(values) for values in columns))


@dataclass
class Scored:
    """Every posting of the query's terms with its document's whole score (a document appears
    once per query term it holds, `terms` times at most)."""

    documents: np.ndarray
    scores: np.ndarray
    terms: int

    @property
    def size(self) -> int:
        return self.documents.size


def scored(postings: dict[int, Postings], params: dict) -> Scored:
    """Return every document holding a query term with its BM25 score, per posting, in no order.

    Summed term by term in the order of params["term_ids"], as the exhaustive SQL sums them.
    """
    shape = {name: params[name] for name in ("avg_title", "avg_body", "k1", "b", "title_weight")}
    ids, weights = [], []
    for term_id, idf in zip(params["term_ids"], params["idfs"], strict=True):
        if term_id in postings:
            ids.append(postings[term_id].documents)
            weights.append(idf * postings[term_id].weights(**shape))
    if not ids:
        return Scored(np.empty(0, dtype=np.int64), np.empty(0), 0)
    terms = len(ids)
    ids, weights = np.concatenate(ids), np.concatenate(weights)
    if ids.max() < DENSE_IDS * ids.size + DENSE_IDS_FLOOR:
        return Scored(ids, np.bincount(ids, weights=weights)[ids], terms)
    _, ranks = np.unique(ids, return_inverse=True)
    return Scored(ids, np.bincount(ranks, weights=weights)[ranks], terms)


def top(found: Scored, k: int) -> tuple[list[int], list[float]]:
    """Return the best `k` documents and their scores, best first (ties: lower id first).

    Without sorting them all: the best k * terms postings hold at least k documents (each
    appears at most once per term), and every document tied with the k-th is among them.
    """
    if found.size > k * found.terms:
        cut = found.size - k * found.terms
        keep = found.scores >= np.partition(found.scores, cut)[cut]
        documents, scores = found.documents[keep], found.scores[keep]
    else:
        documents, scores = found.documents, found.scores
    documents, first = np.unique(documents, return_index=True)
    scores = scores[first]
    order = np.lexsort((documents, -scores))[:k]
    return documents[order].tolist(), scores[order].tolist()
