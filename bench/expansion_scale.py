"""Typo, prefix and Chinese-character expansion at scale: what the vocabulary read adds to a search.

Expansion (search.backends.postgres.vocabulary) reads only the vocabulary (search_bm25_term),
never postings, so its cost follows the number of terms, not of documents. This builds a
collection's vocabulary of the size a million documents give (the words of
bench.fulltext_scale's generator, with Zipf document frequencies, padded with made-up words
up to --terms) without the documents themselves, then times the plan of each query with
expansion on and off (planning.plan: TERMS_SQL, and EXPAND_SQL when a word is lacking or rare).
The difference is what expansion adds before scoring; scoring the words it adds costs what
searching those words costs (the same bounded strategies).

    DATABASE_URL=postgres://... .venv/bin/python -m bench.expansion_scale run --output /tmp/ex.json
    DATABASE_URL=postgres://... .venv/bin/python -m bench.expansion_scale drop
"""

from __future__ import annotations

import argparse
import random
import time

from bench.common import django_stack, machine, summary, write_json

COLLECTION = "bench-expansion"
SEED = 20261205
DOCUMENTS = 1_000_000
SYLLABLES = ["ka", "ri", "to", "mel", "van", "sor", "lin", "qua", "dez", "pho", "rem", "bu", "tas", "nor", "gel"]


def build(terms: int) -> dict:
    """Create the collection with a vocabulary of `terms` lexemes (one statement per 100k rows)."""
    from django.db import connection, transaction

    from bench.fulltext_scale import Vocabulary
    from search.highlight import stem

    vocabulary = Vocabulary()
    rng = random.Random(SEED)
    lexemes: dict[str, int] = {}
    for rank, word in enumerate(list(vocabulary.english) + list(vocabulary.chinese), start=1):
        lexeme = stem(str(word)) if str(word).isascii() else str(word)
        lexemes.setdefault(lexeme, max(1, int(DOCUMENTS * 0.2 / rank)))
    while len(lexemes) < terms:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 6)))
        lexemes.setdefault(word, 1 + int(rng.paretovariate(1.2)))
    items = list(lexemes.items())[:terms]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO search_bm25_collection (name, doc_count, title_tokens, body_tokens, k1, b, title_weight) "
            "VALUES (%s, %s, %s, %s, 1.2, 0.75, 2.0) RETURNING id",
            [COLLECTION, DOCUMENTS, DOCUMENTS * 8, DOCUMENTS * 300],
        )
        collection_id = cursor.fetchone()[0]
        for start in range(0, len(items), 100_000):
            chunk = items[start : start + 100_000]
            cursor.execute(
                "INSERT INTO search_bm25_term (collection_id, lexeme, df) "
                "SELECT %s, * FROM unnest(%s::text[], %s::int[])",
                [collection_id, [lexeme for lexeme, _ in chunk], [df for _, df in chunk]],
            )
        cursor.execute("ANALYZE search_bm25_term")
    return {"terms": len(items)}


def queries(count: int) -> dict[str, list[str]]:
    """Return queries per class: typos (one and two edits), unfinished last words, Chinese characters."""
    from bench.fulltext_scale import Vocabulary

    vocabulary = Vocabulary()
    rng = random.Random(SEED + 1)
    english = [str(w) for w in vocabulary.english[:5000] if str(w).isascii()]
    medium = [w for w in english if 6 <= len(w) <= 8]
    long = [w for w in english if len(w) >= 10]
    chinese = [str(w) for w in vocabulary.chinese[:5000]]

    def typo(word: str, edits: int) -> str:
        for _ in range(edits):
            i = rng.randrange(1, len(word) - 1)
            word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # a swap of two letters
        return word

    return {
        "known words (no expansion)": [f"{rng.choice(english)} {rng.choice(english)}" for _ in range(count)],
        "typo, 1 edit": [f"{rng.choice(english)} {typo(rng.choice(medium), 1)}" for _ in range(count)],
        "typo, 2 edits (9+ letters)": [f"{rng.choice(english)} {typo(rng.choice(long), 2)}" for _ in range(count)],
        "unfinished last word": [f"{rng.choice(english)} {rng.choice(medium)[:4]}" for _ in range(count)],
        "Chinese character": [rng.choice(chinese)[0] for _ in range(count)],
        "four misspelt words (3 expanded)": [
            " ".join(typo(rng.choice(medium), 1) for _ in range(4)) for _ in range(count)
        ],
    }


def measure(classes: dict[str, list[str]], *, repeats: int) -> dict:
    from search.backends.postgres import planning
    from search.query import parse

    results = {}
    for name, texts in classes.items():
        on, off, added, added_best = [], [], [], []
        for text in texts:
            median, best = {}, {}
            for expand in (False, True):
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    planning.plan(parse(text), k=50, collection=COLLECTION, expand=expand)
                    times.append((time.perf_counter() - started) * 1000)
                median[expand], best[expand] = sorted(times)[len(times) // 2], min(times)
            off.append(median[False])
            on.append(median[True])
            added.append(median[True] - median[False])
            # The best of the repeats: what the work costs when the shared machine lets it run.
            added_best.append(best[True] - best[False])
        results[name] = {
            "expansion off": summary(off),
            "expansion on": summary(on),
            "added": summary(added),
            "added, best of repeats": summary(added_best),
        }
    return results


def cmd_run(args: argparse.Namespace) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM search_bm25_collection WHERE name = %s", [COLLECTION])
        exists = cursor.fetchone()[0]
    built = {} if exists else build(args.terms)
    return {
        "machine": machine(),
        "built": built,
        "results": measure(queries(args.queries), repeats=args.repeats),
    }


def cmd_drop(args: argparse.Namespace) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM search_bm25_term t USING search_bm25_collection c "
            "WHERE t.collection_id = c.id AND c.name = %s",
            [COLLECTION],
        )
        cursor.execute("DELETE FROM search_bm25_collection WHERE name = %s", [COLLECTION])
    return {"dropped": COLLECTION}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("--terms", type=int, default=1_000_000, help="vocabulary size (1M documents: under 1M)")
    run.add_argument("--queries", type=int, default=40, help="queries per class")
    run.add_argument("--repeats", type=int, default=5)
    run.add_argument("--output")
    commands.add_parser("drop")
    args = parser.parse_args()
    with django_stack():
        payload = cmd_run(args) if args.command == "run" else cmd_drop(args)
    write_json(getattr(args, "output", None), payload)


if __name__ == "__main__":
    main()
