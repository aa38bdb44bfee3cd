"""Full-text at scale: candidate query latency at 10k, 100k and 1M documents, capped vs uncapped.

The documents go into a collection of their own (`bench-fulltext`, never the site's "library"),
in the database `make run` uses, so the site's searches never see them. They are generated
bilingual text (English: the sample library's words by frequency plus a long tail of made-up
words; Chinese: jieba's dictionary words by their frequency), drawn Zipf-like so that there are
very common and very rare terms. Chinese is generated as words, so the segmented search text is
known in Python, exactly as ingest stores it; COPY writes the rows and PostgreSQL computes the
stored vector once per row at load time.

    .venv/bin/python -m bench.fulltext_scale run --sizes 10000 100000 1000000 --output /tmp/ft.json
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

# The candidate query before ranking was capped (git history: search/fulltext.py), for the
# side-by-side comparison.
UNCAPPED_SQL = """
WITH query AS (
    SELECT websearch_to_tsquery(%(config)s::regconfig, %(query)s) AS q_all
), relaxed AS (
    SELECT q_all,
           CASE WHEN q_all::text ~ '[!<]' OR querytree(q_all) = 'T' THEN q_all
                ELSE replace(querytree(q_all), ' & ', ' | ')::tsquery END AS q_any
    FROM query
)
SELECT d.id, d.title, d.language, d.source, d.content_hash,
       (d.search_vector @@ relaxed.q_all) AS all_terms,
       ts_rank_cd(d.search_vector, relaxed.q_any, 32) AS rank
FROM documents_document d, relaxed
WHERE d.collection = %(collection)s
  AND numnode(relaxed.q_all) > 0
  AND d.search_vector @@ relaxed.q_any
ORDER BY all_terms DESC, rank DESC, d.id
LIMIT %(limit)s
"""

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
        "common": common,
        "typical": [f"{mid[i]} {mid[i + 1]}" for i in range(0, 16, 2)],
        "typical_zh": [f"{chinese[200 + i * 37]} {chinese[900 + i * 53]}" for i in range(8)],
        "common_and_rare": [f"{common[i]} {rare[i]}" for i in range(4)],
    }


def time_query(sql: str, query: str, collection: str, k: int, cap: int) -> float:
    from django.db import connection

    from documents.textsearch import TS_CONFIG, segment_query

    params = {"config": TS_CONFIG, "query": segment_query(query), "collection": collection, "limit": k, "cap": cap}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.fetchall()
    return (time.perf_counter() - started) * 1000


def explain(sql: str, query: str, collection: str, k: int, cap: int) -> str:
    from django.db import connection

    from documents.textsearch import TS_CONFIG, segment_query

    params = {"config": TS_CONFIG, "query": segment_query(query), "collection": collection, "limit": k, "cap": cap}
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def measure(queries: dict[str, list[str]], *, k: int, cap: int, repeats: int, uncapped_budget_s: float) -> dict:
    """Return p50/p95 per query class, capped (now) and uncapped (before), interleaved."""
    from search.fulltext import CANDIDATES_SQL

    results = {}
    for name, texts in queries.items():
        capped, uncapped = [], []
        spent = 0.0
        for _ in range(repeats):
            for text in texts:
                capped.append(time_query(CANDIDATES_SQL, text, COLLECTION, k, cap))
                if spent < uncapped_budget_s:
                    took = time_query(UNCAPPED_SQL, text, COLLECTION, k, cap)
                    uncapped.append(took)
                    spent += took / 1000
        row = {"queries": texts, "capped_ms": summary(capped), "uncapped_ms": summary(uncapped)}
        if uncapped:
            row["uncapped_vs_capped_p50"] = round(row["uncapped_ms"]["p50"] / max(row["capped_ms"]["p50"], 0.01), 1)
        results[name] = row
        print(f"    {name}: capped p50 {row['capped_ms']['p50']} ms, uncapped p50 {row['uncapped_ms']['p50']} ms")
    return results


def cmd_run(args: argparse.Namespace) -> dict:
    from django.conf import settings
    from django.db import connection

    from search.fulltext import CANDIDATES_SQL

    with connection.cursor() as cursor:
        cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    vocabulary = Vocabulary()
    queries = pick_queries(vocabulary)
    cap = settings.SEARCH_RANK_CAP
    report = {"benchmark": "fulltext_scale", "machine": machine(), "k": args.k, "cap": cap, "sizes": []}
    for size in args.sizes:
        print(f"size {size}:", flush=True)
        loading = grow_to(size, vocabulary)
        measured = measure(queries, k=args.k, cap=cap, repeats=args.repeats, uncapped_budget_s=args.uncapped_budget)
        library = [time_query(CANDIDATES_SQL, q, "library", args.k, cap) for q in ("苹果 营养", "python", "coffee")]
        report["sizes"].append(
            {"documents": collection_size(), **loading, "classes": measured, "library_queries_ms": summary(library)}
        )
    report["explain_rare"] = explain(CANDIDATES_SQL, queries["rare"][0], COLLECTION, args.k, cap)
    report["explain_common"] = explain(CANDIDATES_SQL, queries["common"][0], COLLECTION, args.k, cap)
    report["explain_typical"] = explain(CANDIDATES_SQL, queries["typical"][0], COLLECTION, args.k, cap)
    report["explain_library"] = explain(CANDIDATES_SQL, "python", "library", args.k, cap)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('documents_document'))")
        report["table_size_with_indexes"] = cursor.fetchone()[0]
    return report


def cmd_drop(args: argparse.Namespace) -> dict:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM documents_document WHERE collection = %s", [COLLECTION])
        deleted = cursor.rowcount
        # FULL rewrites the table and its indexes without the deleted rows, giving the disk back
        # (it locks the table for the seconds that takes).
        cursor.execute("VACUUM FULL ANALYZE documents_document")
    return {"deleted": deleted, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="grow the bench collection to each size and measure")
    run.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    run.add_argument("--k", type=int, default=50, help="candidates per query (SEARCH_K_INITIAL)")
    run.add_argument("--repeats", type=int, default=5)
    run.add_argument("--uncapped-budget", type=float, default=60.0, help="seconds per class for the old query")
    run.add_argument("--output")
    sub.add_parser("drop", help="delete the bench collection's rows")
    args = parser.parse_args()
    with django_stack():
        from django.core.management import call_command

        call_command("migrate", "--noinput", verbosity=0)
        report = cmd_run(args) if args.command == "run" else cmd_drop(args)
    write_json(getattr(args, "output", None), report)


if __name__ == "__main__":
    main()
