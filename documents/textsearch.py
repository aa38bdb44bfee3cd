"""The one place that segments Chinese text and builds the text PostgreSQL indexes.

PostgreSQL's parser does not split Chinese into words, so Chinese runs are segmented here with
jieba (documents with its search mode, queries with its accurate mode) and joined with spaces;
English keeps PostgreSQL's `english` stemming. Any stock PostgreSQL works, no extension needed.
"""

import logging
import re
import threading

import jieba

# The text search configuration for every vector and query (documents/migrations/0002): PostgreSQL's
# `english` (its stop words and Snowball stemmer; Chinese words, already space-separated here, pass
# through unchanged) without the whole-compound token of a hyphenated word, so that
# "heat-transfer" is indexed as its parts, heat and transfer, as Lucene's standard analyzer does,
# rather than as the parts plus a third token that counts the same words twice.
TS_CONFIG = "searchsite_english"
# CJK unified ideographs (basic block and extension A) and compatibility ideographs, as the
# inside of a regular expression's character class.
CJK_RANGES = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RUN = re.compile(f"[{CJK_RANGES}]+")
# CJK and full-width punctuation become spaces so they never glue onto a word.
CJK_PUNCTUATION = re.compile(r"[\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65\u2018-\u201f\u2026]")
# Share of CJK characters (among letters) above which a text counts as Chinese.
ZH_SHARE = 0.3
EN_SHARE = 0.05

jieba.setLogLevel(logging.WARNING)
_jieba_lock = threading.Lock()
_jieba_ready = False


def warm_up() -> None:
    """Load the segmenter's dictionary (about a second) before the first request needs it."""
    _ensure_jieba()


def _ensure_jieba() -> None:
    """Load jieba's dictionary once per process (about a second, then cached)."""
    global _jieba_ready
    if _jieba_ready:
        return
    with _jieba_lock:
        if not _jieba_ready:
            jieba.initialize()
            _jieba_ready = True


def has_cjk(text: str) -> bool:
    return CJK_RUN.search(text) is not None


def segment_for_index(text: str) -> str:
    """Return `text` with Chinese runs split into words (search mode: also sub-words)."""
    text = CJK_PUNCTUATION.sub(" ", text)
    if not has_cjk(text):
        return text
    _ensure_jieba()
    return CJK_RUN.sub(lambda m: " " + " ".join(jieba.cut_for_search(m.group())) + " ", text)


def segment_words(text: str) -> list[str]:
    """Return the words of a Chinese run in accurate mode (used for queries and highlights)."""
    _ensure_jieba()
    return [word for word in jieba.cut(text) if word.strip()]


def detect_language(text: str) -> str:
    """Return "zh", "en" or "mixed" from the share of CJK characters among the letters."""
    cjk = sum(len(run) for run in CJK_RUN.findall(text))
    letters = sum(1 for ch in text if ch.isalpha())
    if letters == 0:
        return "en"
    share = cjk / letters
    if share >= ZH_SHARE:
        # A Chinese text quoting a few English names is still Chinese.
        latin_words = len(re.findall(r"[A-Za-z]{2,}", text))
        return "zh" if latin_words <= max(3, cjk // 8) else "mixed"
    if share > EN_SHARE:
        return "mixed"
    return "en"
