"""Full-text candidates from PostgreSQL BM25: web-search syntax, Chinese segmentation, ordering."""

from __future__ import annotations

import pytest
from django.db.models import Q

from documents.models import LIBRARY, Document
from search.backends import find_candidates
from search.services import search_run

pytestmark = pytest.mark.django_db

# The sample library's 红富士 nutrition document: the fruit side of the 苹果 keyword trap.
RED_FUJI = "zh-apple-fuji-nutrition"
# Seconds the tests let the real worker take (a fresh worker's first inference is slow).
GENEROUS_SECONDS = 30.0
# Candidates reranked per request in the syntax tests: the syntax is the point, not the model.
SMALL_K_INITIAL = 8


@pytest.fixture(autouse=True)
def _worker_with_a_generous_budget(rerank_worker, settings):
    """Every search here is reranked by the real worker, however busy the machine is."""
    settings.RERANK_TIMEOUT = GENEROUS_SECONDS


def document_id(external_id: str) -> int:
    return Document.objects.get(collection=LIBRARY, external_id=external_id).pk


def candidate_ids(query: str, k_initial: int = 50) -> list[int]:
    return [c.document_id for c in find_candidates(query, k=k_initial).candidates]


def ids_mentioning(ids: list[int], word: str) -> set[int]:
    matches = Document.objects.filter(Q(title__icontains=word) | Q(body__icontains=word), pk__in=ids)
    return set(matches.values_list("pk", flat=True))


# --- web-search syntax never breaks a search ----------------------------------------------------

ODD_QUERIES = {
    "phrase": '"python packages"',
    "or": "python OR jaguar",
    "exclusion": "apple -iphone",
    "unbalanced quote": '"python packages',
    "lone quote": '"',
    "empty quotes": '""',
    "only or": "OR",
    "only operators": "- OR - AND -",
    "stop word": "the",
    "stop words": "the of and",
    "tsquery syntax": "apple & !iphone | (fuji <-> red):*",
    "unbalanced paren": "(apple",
    "backslash and quote": "apple\\' pie",
    "nul byte": "apple\x00pie",
    "control characters": "\x01apple\x1f",
    "emoji with words": "🍎 apple",
    "only emoji": "🍎🍏",
    "mixed scripts and operators": '苹果 "granny smith" -手机 OR python',
    "long": "apple " * 2000,
    "very long word": "x" * 10_000,
}


@pytest.mark.parametrize("query", ODD_QUERIES.values(), ids=ODD_QUERIES.keys())
def test_it_answers_any_query_on_the_page(client, query):
    response = client.get("/search", {"q": query, "k_initial": SMALL_K_INITIAL})

    assert response.status_code == 200
    outcome = response.context["outcome"]
    html = response.content.decode()
    if outcome.candidate_count:
        assert "Full-text order" in html
    elif outcome.query:
        assert "No documents match" in html
    else:
        assert "Type something to search for." in html


@pytest.mark.parametrize("query", ODD_QUERIES.values(), ids=ODD_QUERIES.keys())
def test_it_answers_any_query_in_the_api(client, query):
    response = client.get("/api/v1/search", {"q": query, "k_initial": SMALL_K_INITIAL})

    if "\x00" in query:
        # The API refuses NUL bytes outright, as a JSON error naming the parameter.
        assert response.status_code == 400
        assert list(response.json()["fields"]) == ["q"]
        return
    assert response.status_code == 200
    body = response.json()
    assert len(body["fulltext"]) == min(body["k"], body["candidate_count"])
    if body["fulltext"]:
        assert body["reranked_applied"] is True, body["notice"]


def test_it_finds_documents_for_queries_with_operators(client):
    found = {
        name: client.get("/api/v1/search", {"q": ODD_QUERIES[name], "k_initial": SMALL_K_INITIAL}).json()
        for name in ("phrase", "or", "unbalanced quote", "emoji with words", "mixed scripts and operators")
    }
    assert all(body["candidate_count"] > 0 for body in found.values()), {n: b["notice"] for n, b in found.items()}


@pytest.mark.parametrize("name", ["stop word", "stop words", "only operators", "only or", "only emoji", "lone quote"])
def test_it_says_nothing_matches_for_a_query_without_terms(client, name):
    response = client.get("/search", {"q": ODD_QUERIES[name]})
    assert response.context["outcome"].candidate_count == 0
    assert "No documents match" in response.content.decode()


def test_it_searches_the_first_characters_of_a_very_long_query(client, settings):
    limit = settings.SEARCH_MAX_QUERY_CHARS
    notice = f"Your query was longer than {limit} characters; only the first {limit} were searched."

    body = client.get("/api/v1/search", {"q": ODD_QUERIES["long"], "k_initial": SMALL_K_INITIAL}).json()
    page = client.get("/search", {"q": ODD_QUERIES["very long word"]})

    assert notice in body["notice"]
    assert len(body["query"]) <= limit
    assert body["candidate_count"] > 0
    assert notice in page.context["outcome"].notices
    assert notice in page.content.decode()


def test_it_drops_control_characters_from_the_query(client):
    outcome = client.get("/search", {"q": ODD_QUERIES["nul byte"]}).context["outcome"]
    assert outcome.query == "apple pie"
    assert outcome.candidate_count > 0


# --- Chinese --------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["苹果营养价值", "红富士营养", "膳食纤维", "苹果 维生素"])
def test_it_segments_chinese_queries_like_the_documents(query):
    found = find_candidates(query, k=50).candidates
    assert document_id(RED_FUJI) in [c.document_id for c in found], [c.title for c in found]


def test_it_finds_nothing_for_a_chinese_phrase_no_document_has():
    assert candidate_ids("龘靐齉") == []


# --- ordering, exclusion, limits ----------------------------------------------------------------


@pytest.mark.parametrize("query", ["苹果营养价值", "python snake care", "jaguar speed in the wild", "苹果 python"])
def test_it_ranks_by_bm25_with_scores_that_fall_monotonically(query):
    found = find_candidates(query, k=50).candidates
    scores = [c.score for c in found]

    assert len(found) > 3
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


def test_it_shows_monotonic_full_text_scores_on_the_page_and_in_the_api(client):
    page = client.get("/search", {"q": "python snake care"}).context["outcome"]
    api = client.get("/api/v1/search", {"q": "python snake care"}).json()

    page_scores = [row.fulltext_score for row in page.fulltext]
    api_scores = [row["fulltext_score"] for row in api["fulltext"]]
    assert len(page_scores) > 3
    assert page_scores == sorted(page_scores, reverse=True)
    assert api_scores == page_scores


def test_it_ranks_a_document_with_more_of_the_terms_first():
    found = find_candidates("python snake care", k=50).candidates
    titles = [c.title.lower() for c in found]
    # The care guide for ball pythons has all three words; the style guide only "snake" (snake_case).
    care = next(i for i, title in enumerate(titles) if "care" in title and "python" in title)
    assert care == 0, titles[:5]


@pytest.mark.parametrize(
    ("query", "excluded", "word"), [("apple", "apple -iphone", "iphone"), ("苹果", "苹果 -手机", "手机")]
)
def test_it_removes_documents_with_an_excluded_term(query, excluded, word):
    with_word = ids_mentioning(candidate_ids(query), word)
    without = candidate_ids(excluded)

    assert with_word, f"the library has {query!r} documents that mention {word!r}"
    assert without, "documents without the excluded word are still found"
    assert ids_mentioning(without, word) == set()


def test_it_excludes_in_the_api_too(client):
    body = client.get("/api/v1/search", {"q": "apple -iphone", "k": 50, "k_initial": 50}).json()
    ids = [row["document_id"] for row in body["fulltext"]]
    assert ids
    assert ids_mentioning(ids, "iphone") == set()


def test_it_caps_the_candidates_at_k_initial(client):
    everything = candidate_ids("apple", k_initial=50)
    assert len(everything) > 3

    assert candidate_ids("apple", k_initial=3) == everything[:3]
    body = client.get("/api/v1/search", {"q": "apple", "k_initial": 3}).json()
    assert body["candidate_count"] == 3
    assert [row["document_id"] for row in body["fulltext"]] == everything[:3]
    assert len(body["reranked"]) == 3


# --- SQL ------------------------------------------------------------------------------------------


def test_it_makes_three_sql_queries_per_search(django_assert_num_queries):
    # The query's terms, the candidates, the count of every match (its terms, then the count:
    # search.backends.postgres.counting), then the candidates' chunks.
    with django_assert_num_queries(5):
        outcome = search_run(query="苹果营养价值")
    assert outcome.candidate_count > 0 and outcome.is_reranked


def test_it_makes_four_sql_queries_for_the_search_page(client, django_assert_num_queries):
    # The query terms' statistics, the ranked candidates with their documents, the count (two:
    # issue 26), their chunks, then what this visitor already judged (issue 14).
    with django_assert_num_queries(6):
        response = client.get("/search", {"q": "python snake diet"})
    assert response.context["outcome"].candidate_count > 0


def test_it_makes_one_sql_query_for_a_query_of_stop_words(django_assert_num_queries):
    with django_assert_num_queries(1):
        outcome = search_run(query="the")
    assert outcome.candidate_count == 0
    assert any("too common to search for" in notice for notice in outcome.notices)


def test_it_makes_one_sql_query_for_candidates_when_no_document_has_the_words(django_assert_max_num_queries):
    # The candidate statement, one bounded read of the vocabulary for near spellings and the last
    # word's completions (issue 23: none found), then the "did you mean" lookups (one for the
    # words' lexemes, one for each word's near neighbours); nothing else, and no rerank call.
    with django_assert_max_num_queries(5):
        outcome = search_run(query="zzyzx qwertyuiop")
    assert outcome.candidate_count == 0
    assert outcome.suggestion is None


def test_it_makes_no_sql_query_for_an_empty_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert search_run(query="   ").candidate_count == 0
