"""Highlighting under a threaded web server: concurrent requests get the marks of sequential ones.

The Snowball stemmer keeps the word it works on inside itself; one shared by the request threads
turned concurrent searches into 500s (IndexError) and wrong marks. Found by tests/faults/test_flood.py.
"""

from __future__ import annotations

import threading

from search.highlight import find_matches, query_terms

THREADS = 8
TEXT = (
    "Running apples and generalizations: hopefully the connection between nutrition, fibres and "
    "apple pies is clear. Pythons swallow rodents; Python lists support slicing. "
) * 40
QUERIES = ["running apple", "generalization hope", "connected nutritional fibre", "python slices rodent"]


def marks() -> list[list[tuple[int, int]]]:
    return [find_matches(TEXT, query_terms(query)) for query in QUERIES] * 5


def test_it_highlights_the_same_in_concurrent_threads():
    expected = marks()
    results: list[object] = [None] * THREADS

    def run(slot: int) -> None:
        try:
            results[slot] = marks()
        except Exception as error:  # the failure this test exists for: report, do not hang
            results[slot] = error

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(spans for spans in expected), "every query matches the text"
    for result in results:
        assert result == expected
