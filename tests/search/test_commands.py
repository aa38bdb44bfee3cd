"""The `score` and `keyword_trap` management commands, with the real rerank worker."""

from __future__ import annotations

import re
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from search import worker_client
from search.backends import find_candidates
from search.management.commands.keyword_trap import TITLE_WIDTH
from tests.support.processes import ROOT

# Seconds the tests let the real worker take (a fresh worker's first inference is slow).
GENEROUS_SECONDS = 30.0
DOCUMENT = "红富士苹果富含膳食纤维和维生素C。"
FUJI_TITLE = "红富士的维生素、膳食纤维与营养价值"


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- score ----------------------------------------------------------------------------------------


def test_it_prints_the_workers_score_with_the_model(rerank_worker, tiny_model_dir):
    out = StringIO()
    call_command("score", "苹果营养价值", DOCUMENT, "--timeout", str(GENEROUS_SECONDS), stdout=out)

    text = out.getvalue()
    score = float(re.search(r"^score: (0\.\d{6})$", text, re.M).group(1))
    assert f"model: {tiny_model_dir} (cross-encoder, cpu)" in text
    reply = worker_client.rerank("苹果营养价值", [[DOCUMENT]], timeout=GENEROUS_SECONDS)
    assert reply.ok, reply.notice
    assert score == pytest.approx(reply.scores[0], abs=1e-5)


def test_it_fails_with_exit_code_1_when_no_worker_answers(own_queue):
    completed = run_manage("score", "apple", "an apple a day", "--timeout", "0.5", RERANK_QUEUE=own_queue)

    assert completed.returncode == 1
    assert "did not answer within 0.5 s" in completed.stderr
    assert f"Is a rerank worker running on queue {own_queue!r}?" in completed.stderr
    assert "score:" not in completed.stdout
    assert "Traceback" not in completed.stderr


def test_it_fails_with_exit_code_1_when_redis_is_unreachable(tmp_path):
    completed = run_manage(
        "score", "apple", "an apple a day", "--timeout", "5", REDIS_URL=f"unix://{tmp_path}/no-redis.sock?db=0"
    )

    assert completed.returncode == 1
    assert "the task queue cannot be reached" in completed.stderr
    assert "Traceback" not in completed.stderr


# --- keyword_trap ---------------------------------------------------------------------------------


def section(text: str, heading: str) -> list[str]:
    """Return the result lines (those starting with a rank) after `heading`."""
    block = text.split(heading, 1)[1].strip().split("\n\n", 1)[0]
    return [line for line in block.splitlines()[1:] if re.match(r"^\s*\d+\s", line)]


def columns(line: str) -> tuple[int, str, list[str]]:
    """Return (rank, title, the other columns) of a result line; titles may hold spaces."""
    title_end = 6 + TITLE_WIDTH
    return int(line[:4]), line[6:title_end].strip(), line[title_end:].split()


@pytest.mark.django_db
def test_it_shows_both_orderings_of_the_keyword_trap(rerank_worker, tiny_model_dir, settings):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    out = StringIO()
    call_command("keyword_trap", stdout=out)

    text = out.getvalue()
    assert "query: 苹果营养价值" in text
    assert f"reranker: {tiny_model_dir} (cross-encoder, cpu, float32)" in text
    fulltext_lines = section(text, "Full-text order")
    reranked_lines = section(text, "Reranked order")
    assert len(fulltext_lines) == len(reranked_lines) == settings.SEARCH_K_FINAL
    expected = [c.title for c in find_candidates("苹果营养价值", k=settings.SEARCH_K_INITIAL).candidates]
    for line, title in zip(fulltext_lines, expected, strict=False):
        assert title.startswith(columns(line)[1].removesuffix("…")), (line, title)
    assert any(FUJI_TITLE in line for line in fulltext_lines)

    ranks, scores = [], []
    for line in reranked_lines:
        rank, _title, (score, _fulltext_score, was, move) = columns(line)
        ranks.append(rank)
        scores.append(float(score))
        moved = int(was) - int(rank)
        if int(was) > settings.SEARCH_K_FINAL:
            assert move == "new"
        else:
            assert move == ("=" if moved == 0 else f"{'↑' if moved > 0 else '↓'}{abs(moved)}")
    assert ranks == list(range(1, settings.SEARCH_K_FINAL + 1))
    assert scores == sorted(scores, reverse=True)
    assert re.search(r"^\d+ of the top 10 moved\.$", text, re.M)


@pytest.mark.django_db
def test_it_runs_the_query_it_is_given(rerank_worker, settings):
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS
    out = StringIO()
    call_command("keyword_trap", "--query", "python snake diet", "--k", "3", stdout=out)

    text = out.getvalue()
    assert "query: python snake diet" in text
    assert len(section(text, "Full-text order")) == len(section(text, "Reranked order")) == 3
    assert "What Do Pythons Eat?" in text


@pytest.mark.django_db
def test_it_says_when_nothing_matches(rerank_worker):
    out = StringIO()
    call_command("keyword_trap", "--query", "the", stdout=out)
    assert "No documents match this query." in out.getvalue()


@pytest.mark.django_db
def test_it_shows_the_fulltext_order_and_the_notice_without_a_worker(own_queue, settings):
    settings.RERANK_TIMEOUT = 0.2
    out = StringIO()
    call_command("keyword_trap", stdout=out)

    text = out.getvalue()
    assert "reranker: none answered (timeout)" in text
    assert "notice: The reranker did not answer within 0.2 s" in text
    assert len(section(text, "Full-text order")) == settings.SEARCH_K_FINAL
    assert "(not reranked: the full-text order stands)" in text
