"""Full-text at scale: BM25 candidate latency at 10k, 100k and 1M documents, bounded vs exact.

The documents go into a collection of their own (`bench-fulltext`, never the site's "library"),
in the database `make run` uses, so the site's searches never see them. They are generated
bilingual text (English: the sample library's words by frequency plus a long tail of made-up
words; Chinese: jieba's dictionary words by their frequency), drawn Zipf-like so that there are
very common and very rare terms. Chinese is generated as words, so the segmented search text is
known in Python, exactly as ingest stores it; COPY writes the rows, PostgreSQL computes the stored
vector once per row and the BM25 triggers index each COPY as one statement.

After loading, the common terms' postings are packed (`manage.py pack_postings`). Each query is
timed through the backend as the site runs it (bounded: rare terms whole, a pool of one common
term, several common terms from their packs), and once exhaustively in SQL (every matching
document scored: exact BM25), and the two top-50s are compared. bm25s ranks the same documents
(its own tokenizer over the same segmented text, the same k1 and b) for a second comparison.

    .venv/bin/python -m bench.fulltext_scale run --sizes 10000 100000 1000000 --output /tmp/ft.json
    .venv/bin/python -m bench.fulltext_scale count --size 100000 --output /tmp/count.json  # the match count
    .venv/bin/python -m bench.fulltext_scale drop      # delete the bench rows afterwards

`run` grows the collection to each size in turn and measures at each (the collection is kept
between runs; `drop` deletes it).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import time
from collections import Counter
from pathlib import Path

from bench.common import LIBRARY_FILE, django_stack, machine, summary, write_json

COLLECTION = "bench-fulltext"
# Vocabulary sizes: the English tail of made-up words gives rare terms at 1M documents.
ENGLISH_TAIL_WORDS = 150_000
CHINESE_WORDS = 60_000
SEED = 20261125
ROWS_PER_COPY = 50_000
# Zipf exponent of word frequencies (about 1 in natural language).
ZIPF_S = 1.0
# A query slower than this is cut off (the uncapped query on a very common term can be slow).
STATEMENT_TIMEOUT_MS = 30_000

SYLLABLES = [
    "ka",
    "ri",
    "to",
    "mel",
    "van",
    "sor",
    "lin",
    "qua",
    "dez",
    "pho",
    "rem",
    "bu",
    "tix",
    "nor",
    "gal",
    "fen",
    "osh",
    "yur",
    "ple",
    "cai",
    "dro",
    "mu",
    "zen",
    "hab",
]


# --- generating documents ---------------------------------------------------------------------


class Vocabulary:
    """Word lists with Zipf-like sampling weights (numpy)."""

    def __init__(self) -> None:
        import jieba
        import numpy as np

        self.np = np
        english = Counter()
        for line in LIBRARY_FILE.read_text().splitlines():
            document = json.loads(line)
            if document["language"] == "en":
                english.update(re.findall(r"[a-z]{3,}", document["content"].lower()))
        common = [word for word, _ in english.most_common()]
        rng = np.random.default_rng(SEED)
        tail = set()
        while len(tail) < ENGLISH_TAIL_WORDS:
            parts = rng.choice(SYLLABLES, size=int(rng.integers(3, 5)))
            tail.add("".join(parts))
        self.english = np.array(common + sorted(tail - set(common)))
        dictionary = Path(jieba.__file__).parent / "dict.txt"
        entries = []
        for line in dictionary.read_text(encoding="utf-8").splitlines():
            word, frequency, *_ = line.split(" ")
            if re.fullmatch(r"[\u4e00-\u9fff]{2,4}", word):
                entries.append((int(frequency), word))
        entries.sort(reverse=True)
        self.chinese = np.array([word for _, word in entries[:CHINESE_WORDS]])
        self.english_p = self._zipf(len(self.english))
        self.chinese_p = self._zipf(len(self.chinese))

    def _zipf(self, size: int):
        """Return the cumulative Zipf-like distribution over ranks (sampled by bisection)."""
        weights = 1.0 / (self.np.arange(1, size + 1) + 2.7) ** ZIPF_S
        return self.np.cumsum(weights / weights.sum())

    def words(self, rng, language: str, count: int):
        words, cumulative = (self.english, self.english_p) if language == "en" else (self.chinese, self.chinese_p)
        ranks = self.np.searchsorted(cumulative, rng.random(count) * cumulative[-1])
        return words[self.np.minimum(ranks, len(words) - 1)]


def generate_rows(vocabulary: Vocabulary, start: int, count: int) -> bytes:
    """Return `count` COPY text rows (tab-separated) of documents numbered from `start`."""
    rng = vocabulary.np.random.default_rng(SEED + start)
    languages = rng.choice(["en", "zh", "mixed"], size=count, p=[0.6, 0.3, 0.1])
    out = io.StringIO()
    for offset, language in enumerate(languages):
        number = start + offset
        if language == "en":
            title_words = vocabulary.words(rng, "en", int(rng.integers(4, 9)))
            body_words = vocabulary.words(rng, "en", int(rng.integers(30, 61)))
            title = " ".join(title_words).capitalize()
            body = " ".join(body_words) + "."
            title_search, body_search = title, body
        else:
            title_words = vocabulary.words(rng, "zh", int(rng.integers(3, 7)))
            body_words = list(vocabulary.words(rng, "zh", int(rng.integers(40, 91))))
            if language == "mixed":
                for position, word in zip(
                    rng.integers(0, len(body_words), size=6), vocabulary.words(rng, "en", 6), strict=True
                ):
                    body_words[position] = f" {word} "
            title = "".join(title_words)
            body = "".join(body_words) + "。"
            # The segmentation is known: the words were generated one by one.
            title_search = " ".join(title_words)
            body_search = " ".join(word.strip() for word in body_words)
        digest = hashlib.sha256(f"{number}\n{title}\n{body}".encode()).hexdigest()
        fields = [COLLECTION, f"b{number}", title, body, language, "bench", "{}", digest, title_search, body_search]
        out.write("\t".join(fields) + "\tnow\tnow\n")
    return out.getvalue().encode()


def collection_size() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM documents_document WHERE collection = %s", [COLLECTION])
        return cursor.fetchone()[0]


def grow_to(size: int, vocabulary: Vocabulary) -> dict:
    """Add documents until the bench collection holds `size`; return how long it took."""
    from django.db import connection

    have = collection_size()
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")  # a COPY of 50,000 rows and its trigger take a while
    started = time.perf_counter()
    columns = (
        "collection, external_id, title, body, language, source, metadata, content_hash, "
        "title_search, body_search, created_at, updated_at"
    )
    while have < size:
        count = min(ROWS_PER_COPY, size - have)
        data = generate_rows(vocabulary, have, count)
        with connection.cursor() as cursor, cursor.copy(f"COPY documents_document ({columns}) FROM STDIN") as copy:
            copy.write(data)
        have += count
        print(f"  loaded {have} documents ({time.perf_counter() - started:.0f}s)", flush=True)
    load_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE documents_document")  # also flushes the GIN pending list
        # The postings' visibility map lets the pool's reads be index-only.
        cursor.execute("VACUUM ANALYZE search_bm25_posting")
        cursor.execute("VACUUM ANALYZE search_bm25_term")
        cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    return {
        "load_s": round(load_seconds, 1),
        "vacuum_analyze_s": round(time.perf_counter() - started - load_seconds, 1),
    }


# --- measuring --------------------------------------------------------------------------------


def pick_queries(vocabulary: Vocabulary) -> dict[str, list[str]]:
    """Return queries per class, from word ranks (the index knows nothing of them beforehand)."""
    from django.db import connection

    def indexed(words) -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT w FROM unnest(%s::text[]) w WHERE numnode(plainto_tsquery('english', w)) > 0", [list(words)]
            )
            return [row[0] for row in cursor.fetchall()]

    english = vocabulary.english
    common = indexed(english[:40])[:8]
    mid = indexed(english[300:1500:40])
    rare = list(english[-30_000::3000])  # deep in the made-up tail: a few documents at 1M
    chinese = vocabulary.chinese
    return {
        "rare": rare[:8],
        "typical": [f"{mid[i]} {mid[i + 1]}" for i in range(0, 16, 2)],
        "typical_zh": [f"{chinese[200 + i * 37]} {chinese[900 + i * 53]}" for i in range(8)],
        "common": common,
        "two_common": [f"{common[i]} {common[i + 1]}" for i in range(0, 8, 2)],
        "common_and_rare": [f"{common[i]} {rare[i]}" for i in range(4)],
        "long_zh": [f"{chinese[10 + i]}{chinese[400 + i * 7]}{chinese[2000 + i * 11]}" for i in range(4)],
    }


def ranked(query: str, *, k: int, exact: bool) -> tuple[list[int], float, bool]:
    """Return the top-k document ids, the milliseconds taken and whether the backend proved it exact."""
    from django.test.utils import override_settings

    from search.backends import find_candidates

    unbounded = {"SEARCH_EXHAUSTIVE_POSTINGS": 10**9, "SEARCH_COMMON_TERM_POOL": 10**9} if exact else {}
    with override_settings(**unbounded):
        started = time.perf_counter()
        found = find_candidates(query, k=k, collection=COLLECTION)
        took = (time.perf_counter() - started) * 1000
    return [c.document_id for c in found.candidates], took, found.exact


def overlap(found: list[int], reference: list[int]) -> float:
    """Return the share of the reference top-k that `found` also holds (1.0 when both are empty)."""
    if not reference:
        return 1.0 if not found else 0.0
    return len(set(found) & set(reference)) / len(reference)


def measure(queries: dict[str, list[str]], *, k: int, repeats: int, exact_budget_s: float, peer=None) -> dict:
    """Return p50/p95 per query class, bounded (the site) and exact, and the top-k agreement."""
    from documents.textsearch import warm_up

    warm_up()  # jieba's dictionary loads once per process (about a second): not a query's cost
    results = {}
    for name, texts in queries.items():
        bounded_ms, exact_ms, agreement, peer_agreement, proven = [], [], [], [], 0
        spent = 0.0
        for text in texts:
            reference = None
            for _ in range(repeats):
                ids, took, was_exact = ranked(text, k=k, exact=False)
                bounded_ms.append(took)
                if spent < exact_budget_s or reference is None:
                    reference, took, _ = ranked(text, k=k, exact=True)
                    exact_ms.append(took)
                    spent += took / 1000
            agreement.append(overlap(ids, reference))
            proven += was_exact
            if peer is not None:
                peer_agreement.append(overlap(ids, peer.top(text, k)))
        row = {
            "queries": texts,
            "bounded_ms": summary(bounded_ms),
            "exact_ms": summary(exact_ms),
            "agreement_with_exact": round(sum(agreement) / len(agreement), 4),
            "proven_exact": f"{proven}/{len(texts)}",
        }
        if peer_agreement:
            row["agreement_with_bm25s"] = round(sum(peer_agreement) / len(peer_agreement), 4)
        results[name] = row
        print(
            f"    {name}: bounded p50 {row['bounded_ms']['p50']} p95 {row['bounded_ms']['p95']} ms, exact p50 "
            f"{row['exact_ms']['p50']} ms, agreement {row['agreement_with_exact']}"
            + (f", with bm25s {row['agreement_with_bm25s']}" if peer_agreement else "")
        )
    return results


class Bm25sPeer:
    """bm25s over the same generated documents (their segmented text), with the site's k1 and b.

    bm25s has one field. With `title_repeat` n > 1 each document's title is indexed n times before
    its body: the nearest one-field stand-in for our BM25F title weight (the term counts match;
    the length normalisation is over the whole text instead of per field).
    """

    def __init__(self, title_repeat: int = 1) -> None:
        import bm25s
        import numpy as np
        import Stemmer
        from django.conf import settings

        self.np, self.bm25s = np, bm25s
        from django.db import connection

        self.stemmer = Stemmer.Stemmer("english")
        texts, self.ids = [], []
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, repeat(title_search || ' ', %s) || body_search FROM documents_document "
                "WHERE collection = %s ORDER BY id",
                [title_repeat, COLLECTION],
            )
            for pk, text in cursor.fetchall():
                self.ids.append(pk)
                texts.append(text)
        started = time.perf_counter()
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, show_progress=False)
        self.retriever = bm25s.BM25(k1=settings.SEARCH_BM25_K1, b=settings.SEARCH_BM25_B, method="lucene")
        self.retriever.index(tokens, show_progress=False)
        self.vocabulary = tokens.vocab
        self.index_seconds = round(time.perf_counter() - started, 1)
        print(f"  bm25s indexed {len(texts)} documents in {self.index_seconds} s", flush=True)

    def top(self, query: str, k: int) -> list[int]:
        from documents.textsearch import segment_for_index

        words = self.bm25s.tokenize(
            [segment_for_index(query)], stopwords="en", stemmer=self.stemmer, show_progress=False, return_ids=False
        )[0]
        known = [word for word in words if word in self.vocabulary]
        if not known:
            return []
        scores = self.retriever.get_scores(known)
        order = self.np.argsort(-scores, kind="stable")[:k]
        return [self.ids[i] for i in order.tolist() if scores[i] > 0]


def explain(query: str, k: int) -> str:
    from search.backends import get_backend
    from search.query import parse

    return get_backend().explain(parse(query), k=k, collection=COLLECTION)


def take_packs() -> dict:
    """Pack the postings of the bench collection's common terms, as `manage.py pack_postings` does."""
    from django.conf import settings
    from django.db import connection

    from search.backends import get_backend

    started = time.perf_counter()
    packed = get_backend().pack(collection=COLLECTION)
    took = time.perf_counter() - started
    print(f"  packed {packed[COLLECTION]} terms in {settings.SEARCH_PACK_MIN_DF}+ documents ({took:.0f}s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(k.df), 0), coalesce(sum(length(k.documents) + length(k.tf_title) "
            "+ length(k.tf_body) + length(k.title_tokens) + length(k.body_tokens)), 0) "
            "FROM search_bm25_pack k JOIN search_bm25_collection c ON c.id = k.collection_id WHERE c.name = %s",
            [COLLECTION],
        )
        terms, postings, size = cursor.fetchone()
    return {
        "packed_terms": terms,
        "packed_postings": postings,
        "packed_mb": round(size / 2**20, 1),
        "pack_min_df": settings.SEARCH_PACK_MIN_DF,
        "pack_s": round(took, 1),
    }


def table_sizes() -> dict[str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
            "WHERE relname IN ('documents_document', 'search_bm25_posting', 'search_bm25_term', "
            "'search_bm25_document', 'search_bm25_pack') ORDER BY relname"
        )
        return dict(cursor.fetchall())


def cmd_run(args: argparse.Namespace) -> dict:
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    vocabulary = Vocabulary()
    queries = pick_queries(vocabulary)
    report = {
        "benchmark": "fulltext_scale",
        "machine": machine(),
        "k": args.k,
        "exhaustive_postings": settings.SEARCH_EXHAUSTIVE_POSTINGS,
        "common_term_pool": settings.SEARCH_COMMON_TERM_POOL,
        "sizes": [],
    }
    for size in args.sizes:
        print(f"size {size}:", flush=True)
        loading = grow_to(size, vocabulary)
        loading.update(take_packs())
        peer = Bm25sPeer(args.bm25s_title_repeat) if args.bm25s else None
        measured = measure(queries, k=args.k, repeats=args.repeats, exact_budget_s=args.exact_budget, peer=peer)
        report["sizes"].append(
            {
                "documents": collection_size(),
                **loading,
                "bm25s_index_s": peer.index_seconds if peer else None,
                "bm25s_title_repeat": args.bm25s_title_repeat if peer else None,
                "classes": measured,
                "table_sizes": table_sizes(),
            }
        )
        del peer
    report["explain"] = {name: explain(texts[0], args.k) for name, texts in queries.items()}
    return report


def cmd_count(args: argparse.Namespace) -> dict:
    """Time the match count (search.backends.postgres.counting) of each query class at one size:
    exact (every posting read) and as the site runs it (SEARCH_COUNT_POSTINGS: a sample beyond),
    with how far each estimate is from the exact count."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import override_settings

    from search.backends import count_matches

    with connection.cursor() as cursor:
        cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    vocabulary = Vocabulary()
    loading = grow_to(args.size, vocabulary)
    queries = pick_queries(vocabulary)
    budget = settings.SEARCH_COUNT_POSTINGS
    classes = {}
    for name, texts in queries.items():
        rows = []
        for text in texts:
            timed = {}
            for mode, limit in (("exact", 10**12), ("bounded", budget)):
                with override_settings(SEARCH_COUNT_POSTINGS=limit):
                    took = []
                    for _ in range(args.repeats):
                        started = time.perf_counter()
                        counted = count_matches(text, collection=COLLECTION)
                        took.append((time.perf_counter() - started) * 1000)
                timed[mode] = (counted, summary(took))
            exact, bounded = timed["exact"][0], timed["bounded"][0]
            rows.append(
                {
                    "query": text,
                    "postings": exact.postings,
                    "matches": exact.total,
                    "estimate": bounded.total if not bounded.exact else None,
                    "error": round(bounded.total / exact.total - 1, 3) if exact.total and not bounded.exact else 0.0,
                    "exact_ms": timed["exact"][1],
                    "bounded_ms": timed["bounded"][1],
                }
            )
        classes[name] = rows
    return {
        "benchmark": "fulltext_scale count",
        "machine": machine(),
        "documents": collection_size(),
        "count_postings": budget,
        **loading,
        "classes": classes,
    }


def cmd_drop(args: argparse.Namespace) -> dict:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Packs first: without them, deleting logs no changes for them.
        cursor.execute(
            "DELETE FROM search_bm25_pack k USING search_bm25_collection c "
            "WHERE k.collection_id = c.id AND c.name = %s",
            [COLLECTION],
        )
        cursor.execute("DELETE FROM documents_document WHERE collection = %s", [COLLECTION])
        deleted = cursor.rowcount
        # FULL rewrites the table and its indexes without the deleted rows, giving the disk back
        # (it locks the table for the seconds that takes).
        tables = ("documents_document", "search_bm25_posting", "search_bm25_document", "search_bm25_term")
        for table in (*tables, "search_bm25_pack", "search_bm25_change"):
            cursor.execute(f"VACUUM FULL ANALYZE {table}")
    return {"deleted": deleted, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="grow the bench collection to each size and measure")
    run.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    run.add_argument("--k", type=int, default=50, help="candidates per query (SEARCH_K_INITIAL)")
    run.add_argument("--repeats", type=int, default=5)
    run.add_argument("--exact-budget", type=float, default=60.0, help="seconds per class for exact repeats")
    run.add_argument("--no-bm25s", dest="bm25s", action="store_false", help="skip the bm25s comparison")
    run.add_argument(
        "--bm25s-title-repeat", type=int, default=1, help="index each title this many times in bm25s (1: once)"
    )
    run.add_argument("--output")
    count = sub.add_parser("count", help="grow the bench collection to a size and time the match count")
    count.add_argument("--size", type=int, default=100_000)
    count.add_argument("--repeats", type=int, default=3)
    count.add_argument("--output")
    sub.add_parser("drop", help="delete the bench collection's rows")
    args = parser.parse_args()
    with django_stack():
        from django.core.management import call_command

        call_command("migrate", "--noinput", verbosity=0)
        commands = {"run": cmd_run, "count": cmd_count, "drop": cmd_drop}
        report = commands[args.command](args)
    write_json(getattr(args, "output", None), report)


if __name__ == "__main__":
    main()
