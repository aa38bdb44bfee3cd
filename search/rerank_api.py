"""The rerank APIs in the shapes clients already speak: Cohere v1 and v2, and TEI's /rerank.

Each view reads its shape, calls search.reranking.texts_rerank (the same limits, budget and
language rule for all; it orders the texts and cuts them to top_n), and writes its shape through
an output serializer.
"""

from __future__ import annotations

import math
import time
import uuid

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from documents.api_parsers import CountedJSONParser, TooManyTokens
from search import semantic, worker_client
from search.api import WholeNumberField, json_exception_handler
from search.reranking import (
    MAX_RERANK_DOCUMENTS,
    MAX_RERANK_TEXT_CHARS,
    RerankedTexts,
    RerankRefused,
    budget_refusal,
    limits_check,
    rerank_call_log,
    texts_rerank,
    texts_truncate,
)
from search.throttling import SearchThrottle

# Cohere bills one search unit per query with up to 100 documents; `meta.billed_units` counts the
# same way so that tools tracking Cohere usage see comparable numbers. Nothing is charged here.
COHERE_DOCUMENTS_PER_SEARCH_UNIT = 100
# The version of this site that TEI's /info reports (pyproject.toml).
SITE_VERSION = "0.1.0"
# A probability this close to 0 or 1 is clamped before its logit is taken (raw_scores): the
# worker's fp32 sigmoid cannot say more, and log(0) is not a number.
LOGIT_CLAMP = 1e-7
# TEI's error categories (text-embeddings-inference router ErrorType), by our refusal reason.
# Fields a Cohere document object may have, and names rank_fields may list: a document is a
# record (title, body, url, ...), not a table. Without a bound, 200 documents and thousands of
# rank_fields joined hundreds of megabytes before a limit was checked (issue 25, finding 1).
MAX_DOCUMENT_FIELDS = 50
MAX_RANK_FIELDS = 50
# JSON tokens (strings, commas, opening brackets) beyond the documents: query, top_n, model and
# the other parameters, with room for fields a client sends that we ignore.
OTHER_PARAMETER_TOKENS = 100
TEI_ERROR_TYPES = {
    "too_large": "validation",
    "language": "validation",
    "throttled": "overloaded",
    "busy": "overloaded",
    "unavailable": "unhealthy",
    "timeout": "unhealthy",
    "error": "backend",
}


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "maxLength": MAX_RERANK_TEXT_CHARS},
            {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": 'Cohere\'s document object: {"text": ...}, or the fields named in rank_fields',
            },
        ]
    }
)
class RerankDocumentField(serializers.Field):
    """A document: a string, or an object whose values are strings (Cohere's {"text": ...})."""

    default_error_messages = {"invalid": 'Expected a string or an object of strings such as {{"text": "..."}}.'}

    def to_internal_value(self, data: object) -> str | dict[str, str]:
        if isinstance(data, str):
            return data
        if isinstance(data, dict) and data and all(isinstance(value, str) for value in data.values()):
            return data
        self.fail("invalid")

    def to_representation(self, value: object) -> object:
        return value


class StrictCharField(serializers.CharField):
    """A string field that takes only JSON strings (DRF's CharField turns 42 into "42")."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class CohereRerankParser(CountedJSONParser):
    """The largest Cohere request we take, in JSON tokens: 200 documents of 50 fields (a name, a
    value and a comma each, and a bracket and a comma a document) and 50 rank_fields (a name and a
    comma each). A body with more is refused before it is decoded."""

    max_tokens = MAX_RERANK_DOCUMENTS * (3 * MAX_DOCUMENT_FIELDS + 2) + 2 * MAX_RANK_FIELDS + OTHER_PARAMETER_TOKENS


class TeiRerankParser(CountedJSONParser):
    """The largest TEI request we take, in JSON tokens: 200 texts (a string and a comma each)."""

    max_tokens = 2 * MAX_RERANK_DOCUMENTS + OTHER_PARAMETER_TOKENS


def cohere_limits_check(data: object) -> None:
    """Raise RerankRefused (413) when a Cohere request passes a limit, sized from the raw JSON
    before any document is validated or any text joined (no loop over more than 200 documents).

    A document object's text is its rank_fields joined as "name: value" lines; its length is
    summed, never built. What is not the expected type is left to the serializer to refuse.
    """
    if not isinstance(data, dict):
        return
    query, documents, names = data.get("query"), data.get("documents"), data.get("rank_fields")
    documents = documents if isinstance(documents, list) else []
    limits_check(count=len(documents))
    if isinstance(names, list) and len(names) > MAX_RANK_FIELDS:
        raise RerankRefused(
            f"{len(names):,} rank_fields; at most {MAX_RANK_FIELDS}.", reason="too_large", field="rank_fields"
        )
    if not (isinstance(names, list) and names and all(isinstance(name, str) for name in names)):
        names = ["text"]
    sizes = []
    for i, document in enumerate(documents):
        if isinstance(document, dict) and len(document) > MAX_DOCUMENT_FIELDS:
            raise RerankRefused(
                f"Document {i} has {len(document):,} fields; at most {MAX_DOCUMENT_FIELDS}.",
                reason="too_large",
                field="documents",
            )
        sizes.append(_joined_chars(document, names))
    limits_check(count=len(documents), query_chars=len(query) if isinstance(query, str) else 0, text_chars=sizes)


def _log_refused(data: object, key: str, refusal: RerankRefused, started: float) -> None:
    """Log the one line of a call refused on its sizes, sized from the raw JSON (the parser has
    bounded its values, so this loop is bounded too)."""
    data = data if isinstance(data, dict) else {}
    query, documents, names = data.get("query"), data.get(key), data.get("rank_fields")
    documents = documents if isinstance(documents, list) else []
    names = names if isinstance(names, list) and names and all(isinstance(n, str) for n in names) else ["text"]
    rerank_call_log(
        query_chars=len(query) if isinstance(query, str) else 0,
        documents=len(documents),
        chars=sum(_joined_chars(document, names) for document in documents),
        status=refusal.reason,
        started=started,
    )


def _joined_chars(document: object, names: list[str]) -> int:
    """Return the length of the text CohereRerankInputSerializer reads from `document` (0 where
    it cannot read one: the serializer says why)."""
    if isinstance(document, str):
        return len(document)
    if not isinstance(document, dict) or not all(isinstance(document.get(name), str) for name in names):
        return 0
    if len(names) == 1:
        return len(document[names[0]])
    # "name: value" lines joined by newlines, as CohereRerankInputSerializer.validate builds them.
    return sum(len(name) + 2 + len(document[name]) for name in names) + len(names) - 1


def cohere_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Return the API's error shape with Cohere's `message` beside `error` (Cohere's clients read
    `message`); a body with too many values is `status: too_large`, as the other 413s."""
    response = json_exception_handler(exc, context)
    if response is None:
        return None
    if "fields" in response.data:
        name, problems = next(iter(response.data["fields"].items()))
        response.data["message"] = f"{name}: {_first_problem(problems)}"
    else:
        response.data["message"] = response.data["error"]
    if isinstance(exc, TooManyTokens):
        response.data["status"] = "too_large"
    return response


class CohereRerankInputSerializer(serializers.Serializer):
    """Cohere's rerank request (v1 and v2). `model` is accepted and ignored: the worker's model serves."""

    query = StrictCharField(min_length=1, trim_whitespace=False)
    documents = serializers.ListField(child=RerankDocumentField(), min_length=1)
    top_n = WholeNumberField(required=False, min_value=1)
    return_documents = serializers.BooleanField(required=False, default=False)
    rank_fields = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        min_length=1,
        max_length=MAX_RANK_FIELDS,
        help_text="v1: object fields to read, in order",
    )
    model = serializers.CharField(required=False, allow_blank=True, help_text="ignored: see GET /api/v1/status")

    def validate(self, data: dict) -> dict:
        fields = data.get("rank_fields") or ["text"]
        texts = []
        for i, document in enumerate(data["documents"]):
            if isinstance(document, str):
                texts.append(document)
                continue
            missing = [name for name in fields if name not in document]
            if missing:
                raise ValidationError({"documents": [f"Document {i} has no {missing[0]!r} field."]})
            # Cohere reads several fields as "name: value" lines, in the order given.
            texts.append(document[fields[0]] if len(fields) == 1 else "\n".join(f"{n}: {document[n]}" for n in fields))
        data["texts"] = texts
        return data


class ApiVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    is_deprecated = serializers.BooleanField()


class BilledUnitsSerializer(serializers.Serializer):
    search_units = serializers.IntegerField(help_text="as Cohere counts them (100 documents a unit); not charged")


class CohereMetaSerializer(serializers.Serializer):
    api_version = ApiVersionSerializer()
    billed_units = BilledUnitsSerializer()


class RerankResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    relevance_score = serializers.FloatField(
        allow_null=True, help_text="null: not scored within the budget (listed last, see `unscored`)"
    )
    document = serializers.DictField(
        required=False, help_text="with return_documents: the document as sent ({'text': ...} for a string)"
    )


class CohereRerankOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    results = RerankResultSerializer(many=True)
    meta = CohereMetaSerializer()
    model = serializers.CharField(help_text="the model that scored (not the one asked for)")
    kind = serializers.CharField(help_text="cross-encoder or bi-encoder")
    unscored = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="indexes not scored within the budget"
    )
    notice = serializers.CharField(required=False, help_text="why some documents have no score")


def refusal_response(refusal: RerankRefused, **extra: object) -> Response:
    """Return the API's JSON error for a refused rerank: {"error", "message", "status", ...}
    (`message` as Cohere's errors carry it), Retry-After kept."""
    body: dict = {"error": refusal.message, "message": refusal.message, "status": refusal.reason, **extra}
    if refusal.field:
        body["fields"] = {refusal.field: [refusal.message]}
    if refusal.retry_after is not None:
        body["retry_after_seconds"] = refusal.retry_after
    response = Response(body, status=refusal.status_code)
    if refusal.retry_after is not None:
        response["Retry-After"] = str(refusal.retry_after)
    return response


class CohereRerankApi(APIView):
    """POST /api/v1/rerank: Cohere's v1 rerank (also the shape infinity serves).

    Besides the request rate, each client has a budget of pairs and characters per minute
    (search.throttling.rerank_budget_charge), so a few huge requests cannot take the reranker.
    """

    permission_classes = [AllowAny]
    throttle_classes = [SearchThrottle]
    parser_classes = [CohereRerankParser]
    api_version = "1"

    def get_exception_handler(self):
        return cohere_exception_handler

    @extend_schema(request=CohereRerankInputSerializer, responses=CohereRerankOutputSerializer)
    def post(self, request: Request) -> Response:
        if (refusal := budget_refusal(request)) is not None:  # before the body is read
            return refusal_response(refusal)
        # Limits first, on the raw JSON (the parser has bounded its tokens): then validation.
        started = time.perf_counter()
        try:
            cohere_limits_check(request.data)
        except RerankRefused as refusal:
            _log_refused(request.data, "documents", refusal, started)
            return refusal_response(refusal)
        params = CohereRerankInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        try:
            reranked = texts_rerank(request=request, query=data["query"], texts=data["texts"], top_n=data.get("top_n"))
        except RerankRefused as refusal:
            return refusal_response(refusal)
        return Response(CohereRerankOutputSerializer(self.body(reranked, data)).data)

    def body(self, reranked: RerankedTexts, data: dict) -> dict:
        """Return the response body (for CohereRerankOutputSerializer)."""
        results = []
        for item in reranked.ranked:
            result = {"index": item.index, "relevance_score": item.score}
            if data["return_documents"]:
                document = data["documents"][item.index]
                result["document"] = {"text": document} if isinstance(document, str) else document
            results.append(result)
        units = math.ceil(len(data["texts"]) / COHERE_DOCUMENTS_PER_SEARCH_UNIT)
        extra = {"unscored": reranked.unscored, "notice": reranked.notice} if reranked.unscored else {}
        return {
            **extra,
            "id": str(uuid.uuid4()),
            "results": results,
            "meta": {
                "api_version": {"version": self.api_version, "is_deprecated": False},
                "billed_units": {"search_units": units},
            },
            "model": reranked.model.model if reranked.model else "",
            "kind": reranked.model.kind if reranked.model else "",
        }


class CohereRerankV2Api(CohereRerankApi):
    """POST /api/v2/rerank: Cohere's v2 rerank (cohere.ClientV2); documents as strings or objects."""

    api_version = "2"

    @extend_schema(request=CohereRerankInputSerializer, responses=CohereRerankOutputSerializer)
    def post(self, request: Request) -> Response:
        return super().post(request)


# --- TEI (text-embeddings-inference) ----------------------------------------------------------------


def tei_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Return TEI's error shape {"error", "error_type"}; invalid input is a 422, as TEI answers it."""
    response = json_exception_handler(exc, context)
    if response is None:
        return None
    if "fields" in response.data:
        response.status_code = 422
        name, problems = next(iter(response.data["fields"].items()))
        response.data["error"] = f"{name}: {_first_problem(problems)}"
    if isinstance(exc, TooManyTokens):
        response.data["status"] = "too_large"
    response.data["error_type"] = {422: "validation", 429: "overloaded", 503: "unhealthy"}.get(
        response.status_code, "validation"
    )
    return response


def _first_problem(problems: object) -> str:
    """Return the first message of DRF's nested field errors ({0: ["Not a valid string."]})."""
    while isinstance(problems, list | dict) and problems:
        problems = next(iter(problems.values())) if isinstance(problems, dict) else problems[0]
    return str(problems)


class TeiRerankInputSerializer(serializers.Serializer):
    query = StrictCharField(min_length=1, trim_whitespace=False)
    texts = serializers.ListField(child=StrictCharField(allow_blank=True, trim_whitespace=False))
    raw_scores = serializers.BooleanField(required=False, default=False)
    return_text = serializers.BooleanField(required=False, default=False)
    truncate = serializers.BooleanField(
        required=False, default=False, help_text=f"cut texts to {MAX_RERANK_TEXT_CHARS:,} characters instead of a 413"
    )
    truncation_direction = serializers.ChoiceField(
        choices=["Left", "Right", "left", "right"], required=False, default="Right"
    )


class TeiRankSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    score = serializers.FloatField(
        allow_null=True,
        help_text="raw_scores: the logit of a cross-encoder (a bi-encoder's cosine as is); null: not scored in time",
    )
    text = serializers.CharField(required=False)


class TeiErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    error_type = serializers.ChoiceField(choices=["validation", "overloaded", "unhealthy", "backend", "empty"])


class TeiApiView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [SearchThrottle]

    def get_exception_handler(self):
        return tei_exception_handler


class TeiRerankApi(TeiApiView):
    """POST /api/tei/rerank: TEI's rerank; base URL for TEI clients: <site>/api/tei."""

    parser_classes = [TeiRerankParser]

    @extend_schema(request=TeiRerankInputSerializer, responses=TeiRankSerializer(many=True))
    def post(self, request: Request) -> Response:
        if (refusal := budget_refusal(request)) is not None:  # before the body is read
            return refusal_response(refusal, error_type=TEI_ERROR_TYPES[refusal.reason])
        texts = request.data.get("texts") if isinstance(request.data, dict) else None
        started = time.perf_counter()
        try:  # the count first, on the raw JSON: then each text is validated
            limits_check(count=len(texts) if isinstance(texts, list) else 0)
        except RerankRefused as refusal:
            _log_refused(request.data, "texts", refusal, started)
            return refusal_response(refusal, error_type=TEI_ERROR_TYPES[refusal.reason])
        params = TeiRerankInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        if not data["texts"]:
            return Response({"error": "`texts` cannot be empty", "error_type": "empty"}, status=400)
        query, texts = data["query"], data["texts"]
        if data["truncate"]:
            # TEI's direction names the side that is cut: "Right" keeps the start.
            keep_start = data["truncation_direction"].lower() == "right"
            query, texts = texts_truncate(query, texts, keep_start=keep_start)
        try:
            reranked = texts_rerank(request=request, query=query, texts=texts)
        except RerankRefused as refusal:
            response = refusal_response(refusal, error_type=TEI_ERROR_TYPES[refusal.reason])
            return response
        kind = reranked.model.kind if reranked.model else None
        ranks = []
        for item in reranked.ranked:
            raw = data["raw_scores"] and item.score is not None
            rank = {"index": item.index, "score": _raw(item.score, kind) if raw else item.score}
            if data["return_text"]:
                rank["text"] = data["texts"][item.index]
            ranks.append(rank)
        return Response(TeiRankSerializer(ranks, many=True).data)


def _raw(score: float, kind: str | None) -> float:
    """Return the logit behind a cross-encoder's sigmoid score; a bi-encoder's cosine is already raw."""
    if kind != "cross-encoder":
        return score
    p = min(max(score, LOGIT_CLAMP), 1 - LOGIT_CLAMP)
    return math.log(p / (1 - p))


class TeiInfoSerializer(serializers.Serializer):
    model_id = serializers.CharField()
    model_sha = serializers.CharField(allow_null=True)
    model_dtype = serializers.CharField()
    model_type = serializers.DictField(help_text='{"reranker": {"id2label": ..., "label2id": ...}}')
    max_concurrent_requests = serializers.IntegerField(allow_null=True)
    max_input_length = serializers.IntegerField(help_text="tokens per query-text pair (RERANKER_MAX_LENGTH)")
    max_batch_tokens = serializers.IntegerField(allow_null=True)
    max_batch_requests = serializers.IntegerField(allow_null=True)
    max_client_batch_size = serializers.IntegerField(help_text="texts per rerank call")
    tokenization_workers = serializers.IntegerField(allow_null=True)
    version = serializers.CharField()
    sha = serializers.CharField(allow_null=True)
    docker_label = serializers.CharField(allow_null=True)
    kind = serializers.CharField(help_text="cross-encoder or bi-encoder")


class TeiInfoApi(TeiApiView):
    """GET /api/tei/info: what serves, in TEI's /info shape (asks the worker: one Celery round trip)."""

    @extend_schema(responses=TeiInfoSerializer)
    def get(self, request: Request) -> Response:
        status = worker_client.worker_status()
        model = status.model
        if not status.ready or model is None:
            problem = status.problem or "the reranker is not ready"
            return Response({"error": f"The reranker is not ready: {problem}.", "error_type": "unhealthy"}, status=503)
        info = {
            "model_id": model.model,
            "model_sha": None,
            "model_dtype": model.dtype,
            # One score per pair, as TEI reports a reranker (a sequence classifier with one label).
            "model_type": {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}},
            "max_concurrent_requests": None,
            "max_input_length": model.max_length,
            "max_batch_tokens": None,  # the worker's, which the web does not know
            "max_batch_requests": None,
            "max_client_batch_size": MAX_RERANK_DOCUMENTS,
            "tokenization_workers": None,
            "version": SITE_VERSION,
            "sha": None,
            "docker_label": None,
            "kind": model.kind,
        }
        return Response(TeiInfoSerializer(info).data)


class StatusModelSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="hub id, directory or packaged name")
    kind = serializers.CharField(help_text="cross-encoder or bi-encoder")
    device = serializers.CharField()
    dtype = serializers.CharField()
    max_length = serializers.IntegerField(help_text="tokens per query-text pair")
    requested = serializers.CharField(help_text="what RERANKER_MODEL asks for")
    fallback_reason = serializers.CharField(allow_blank=True, help_text="why `model` is not `requested`")
    languages = serializers.ListField(child=serializers.CharField(), allow_null=True, help_text="null: all")


class SemanticStatusSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="SEARCH_SEMANTIC: semantic candidates join BM25's")
    path = serializers.CharField(
        help_text="how the nearest chunks are found: pgvector (HNSW index) or exact (a bounded scan)"
    )
    detail = serializers.CharField(help_text="the path in words, with the exact scan's bound")
    embedder = serializers.CharField(
        allow_blank=True, help_text="vectors id of the model that embeds chunks and queries; empty: none loaded"
    )
    stored = serializers.IntegerField(allow_null=True, help_text="chunk vectors stored (the worker's count)")
    pending = serializers.IntegerField(allow_null=True, help_text="chunks still without a vector")


class StatusSerializer(serializers.Serializer):
    """A worker.protocol.WorkerStatus: `model` when ready, else `problem`; `semantic` always."""

    ready = serializers.BooleanField()
    model = StatusModelSerializer(required=False)
    problem = serializers.CharField(required=False, help_text="why nothing serves, when ready is false")
    semantic = SemanticStatusSerializer(required=False, help_text="the semantic candidates (search.semantic)")

    def to_representation(self, instance: object) -> dict:
        data = super().to_representation(instance)
        return {name: value for name, value in data.items() if name == "ready" or value}


class StatusApi(APIView):
    """GET /api/v1/status: the model the rerank worker serves now, or why none does."""

    permission_classes = [AllowAny]
    throttle_classes = [SearchThrottle]

    @extend_schema(responses=StatusSerializer)
    def get(self, request: Request) -> Response:
        """Return the worker's status (network: one Celery round trip, at most 2 s; SQL: one catalogue read)."""
        status = worker_client.worker_status()
        data = StatusSerializer(status).data
        vectors = status.vectors
        data["semantic"] = SemanticStatusSerializer(
            {
                **semantic.status(),
                "embedder": status.embedder,
                "stored": vectors.stored if vectors else None,
                "pending": vectors.pending if vectors else None,
            }
        ).data
        return Response(data)
