"""The plain peer for `evaluate --baseline bm25s`: what a user would otherwise reach for.

bm25s (Lucene's BM25, k1 1.5, b 0.75, its defaults) over the corpus file as it is: title and text
joined, Chinese segmented by jieba in search mode, then bm25s's own tokenizer keeping every word
(single Chinese characters too), with its English stop words and the Snowball English stemmer
(PyStemmer). Evaluation only: the web process never imports this module, and bm25s and PyStemmer
are not needed to run the site.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from documents.textsearch import segment_for_index
from evaluation.runner import EvalQuery, corpus_items

NAME = "bm25s"
K1 = 1.5
B = 0.75
# bm25s's default pattern (\w\w+) drops one-character words, most of them Chinese words (猫, 茶):
# keeping them makes the peer stronger on Chinese (cmrc2018 test nDCG@10 .902 -> .952).
WORD_PATTERN = r"(?u)\b\w+\b"


@dataclass
class BaselineRun:
    name: str
    description: str
    rankings: dict[str, list[str]]  # query id -> corpus ids, best first


def _texts(texts: Iterable[str]) -> list[str]:
    return [segment_for_index(text) for text in texts]


def bm25s_rankings(*, corpus: Path, queries: list[EvalQuery], depth: int) -> BaselineRun:
    """Return bm25s's top `depth` corpus ids per query (CPU: indexes the whole corpus in memory)."""
    import bm25s
    import numpy as np
    import Stemmer

    items = list(corpus_items(corpus))
    ids = [item.external_id for item in items]
    stemmer = Stemmer.Stemmer("english")
    corpus_tokens = bm25s.tokenize(
        _texts(f"{item.title}\n{item.body}" for item in items),
        stopwords="en",
        stemmer=stemmer,
        token_pattern=WORD_PATTERN,
        show_progress=False,
    )
    retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
    retriever.index(corpus_tokens, show_progress=False)
    vocabulary = corpus_tokens.vocab
    rankings: dict[str, list[str]] = {}
    for query in queries:
        words = bm25s.tokenize(
            _texts([query.text]),
            stopwords="en",
            stemmer=stemmer,
            token_pattern=WORD_PATTERN,
            show_progress=False,
            return_ids=False,
        )[0]
        known = [word for word in words if word in vocabulary]
        if not known:
            rankings[query.id] = []
            continue
        scores = retriever.get_scores(known)
        order = np.argsort(-scores, kind="stable")[:depth]
        rankings[query.id] = [ids[i] for i in order.tolist() if scores[i] > 0]
    return BaselineRun(
        name=NAME,
        description=f"bm25s {bm25s.__version__} (Lucene BM25, k1 {K1}, b {B}) over jieba search-mode words, "
        "English stop words removed, Snowball English stemming",
        rankings=rankings,
    )
