"""Engine-neutral: which chunks of each candidate the reranker reads, and the snippet shown for it.

Whatever backend found the candidates, the chunks come from the library (documents.Chunk) and are
chosen by how many query terms they contain, so a long document sends its best passages.
"""

from __future__ import annotations

from documents.models import Chunk
from search.backends.base import Candidate
from search.highlight import QueryTerms, count_matches, snippet
from worker.protocol import passage_text

# Chunks of one document sent to the reranker at most: the ones with the most query-term
# matches (the first chunk, which carries the title's context, is always among them).
MAX_CHUNKS_PER_DOCUMENT = 8


def rerank_text(title: str, chunk_text: str) -> str:
    """Return the text the reranker reads for one chunk: the title gives every chunk its context
    (worker.protocol.passage_text, which the worker's background embedding reads too)."""
    return passage_text(title, chunk_text)


def attach_passages(found: list[Candidate], terms: QueryTerms) -> None:
    """Set each candidate's chunks (best first by term matches, in document order) and snippet (one SQL query)."""
    by_id = {c.document_id: c for c in found}
    if not by_id:
        return
    chunks: dict[int, list[tuple[int, str]]] = {}
    ids: dict[tuple[int, int], int] = {}
    for chunk_id, document_id, ordinal, text in Chunk.objects.filter(document_id__in=list(by_id)).values_list(
        "id", "document_id", "ordinal", "text"
    ):
        chunks.setdefault(document_id, []).append((ordinal, text))
        ids[document_id, ordinal] = chunk_id
    for document_id, candidate in by_id.items():
        own = sorted(chunks.get(document_id, []))
        near = {ordinal: rank for rank, ordinal in enumerate(candidate.near_ordinals)}
        # The chunks nearest the query in meaning (a candidate found by meaning) come first, then
        # the ones with the most query-term matches.
        scored = sorted(own, key=lambda item: (near.get(item[0], len(near)), -count_matches(item[1], terms), item[0]))
        chosen = sorted({*(ordinal for ordinal, _ in scored[: MAX_CHUNKS_PER_DOCUMENT - 1]), 0} & {o for o, _ in own})
        texts = dict(own)
        candidate.chunk_ordinals = chosen
        candidate.chunks = [texts[o] for o in chosen]
        candidate.chunk_ids = [ids[document_id, o] for o in chosen]
        best_text = scored[0][1] if scored else ""
        candidate.snippet = snippet(best_text, terms)
