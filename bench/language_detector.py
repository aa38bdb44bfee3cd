"""How well the site's language detector (documents.textsearch.detect_language) tells the languages
apart, on public sentences of the shared data sets (/work/shared/data, read in place; see each
folder's SOURCE.md): what it answers (en, zh, mixed) for a few hundred English and Chinese
queries and passages each, and for a few hand-written sentences in languages the data sets lack.

    DJANGO_SETTINGS_MODULE=searchsite.settings .venv/bin/python -m bench.language_detector
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections import Counter
from pathlib import Path

from bench.common import machine, write_json

DATA = Path(os.environ.get("SHARED_DATA", "/work/shared/data"))
PER_SET = 300
# Hand-written, a few per language: no data set here holds these languages.
OTHER_LANGUAGES = {
    "fr": [
        "Quelle est la valeur nutritive des pommes ?",
        "Le serpent python mange des rongeurs.",
        "Où se trouve la gare la plus proche ?",
    ],
    "de": [
        "Wie gesund sind Äpfel wirklich?",
        "Die Schlange frisst kleine Säugetiere.",
        "Wann fährt der nächste Zug nach Berlin?",
    ],
    "es": [
        "¿Cuál es el valor nutritivo de la manzana?",
        "La pitón come roedores pequeños.",
        "¿Dónde está la estación de tren?",
    ],
    "ja": ["りんごの栄養価はどれくらいですか", "ニシキヘビは何を食べますか", "最寄りの駅はどこですか"],
    "ko": ["사과의 영양가는 무엇입니까", "비단뱀은 무엇을 먹나요", "가장 가까운 역은 어디입니까"],
    "ru": ["Какова пищевая ценность яблок?", "Питон ест мелких грызунов.", "Где ближайшая станция?"],
}


def lines(path: Path, field: str, count: int) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as rows:
        for row in rows:
            text = json.loads(row).get(field) or ""
            if text.strip():
                texts.append(text)
            if len(texts) == count:
                break
    return texts


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?。！？])\s*", text.strip(), maxsplit=1)[0]


def sets() -> dict[str, tuple[str, list[str]]]:
    """Return {name: (expected language, texts)}."""
    return {
        "en queries (Cranfield 225 + TREC DL 94)": (
            "en",
            lines(DATA / "cranfield/queries.jsonl", "text", PER_SET)
            + lines(DATA / "trec-dl-passage/queries.jsonl", "text", PER_SET),
        ),
        "en passage sentences (TREC DL / MS MARCO)": (
            "en",
            [first_sentence(t) for t in lines(DATA / "trec-dl-passage/corpus.jsonl", "text", PER_SET)],
        ),
        "zh questions (CMRC 2018)": ("zh", lines(DATA / "cmrc2018/queries.jsonl", "text", PER_SET)),
        "zh news questions (RGB)": ("zh", lines(DATA / "rgb-zh/queries.jsonl", "text", PER_SET)),
        "zh medical queries (KUAKE-QTR)": ("zh", lines(DATA / "kuake-qtr/queries.jsonl", "text", PER_SET)),
        "zh passage sentences (CMRC 2018)": (
            "zh",
            [first_sentence(t) for t in lines(DATA / "cmrc2018/corpus.jsonl", "text", PER_SET)],
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output")
    args = parser.parse_args()
    from documents.textsearch import detect_language  # plain Python: no database, no Django set-up

    results = {}
    for name, (expected, texts) in sets().items():
        answers = Counter(detect_language(text) for text in texts)
        wrong = [text for text in texts if detect_language(text) != expected][:5]
        results[name] = {
            "sentences": len(texts),
            "answers": dict(answers),
            "correct_share": round(answers[expected] / len(texts), 4),
            "examples_not_detected": wrong,
        }
    others = {lang: Counter(detect_language(text) for text in texts) for lang, texts in OTHER_LANGUAGES.items()}
    write_json(
        args.output, {"machine": machine(), "sets": results, "other_languages": {k: dict(v) for k, v in others.items()}}
    )


if __name__ == "__main__":
    main()
