"""REST API for judgments: anyone may judge (the page's rules), staff list, filter and delete."""

from __future__ import annotations

import re

from django.db.models import F, QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.throttling import is_staff
from documents.models import Language
from evaluation import judgments
from evaluation.models import GRADE_MAX, GRADE_NOT_RELEVANT, GRADE_RELEVANT, RANK_MAX, Judgment, Ordering
from search.api import WholeNumberField

# The largest id PostgreSQL's bigint holds (Document's BigAutoField).
MAX_DOCUMENT_ID = 2**63 - 1


class JudgeOrStaffReads(BasePermission):
    """POST for anyone (judgment_record applies JUDGMENTS_PUBLIC); reading and deleting for staff."""

    # searchsite.api_schema: reads of this view need staff too; anyone may judge.
    staff_only_reads = True
    anonymous_methods = ("post",)

    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.method == "POST" or is_staff(request)


class JudgmentInputSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=2000, trim_whitespace=False)
    document_id = WholeNumberField(min_value=1, max_value=MAX_DOCUMENT_ID)
    relevant = serializers.BooleanField(required=False, help_text="true: grade 1, false: grade 0")
    grade = WholeNumberField(
        required=False, min_value=0, max_value=GRADE_MAX, help_text="staff only, instead of `relevant`: 0 to 3"
    )
    ordering = serializers.ChoiceField(
        choices=[Ordering.FULLTEXT, Ordering.RERANKED], required=False, help_text="where the result was shown"
    )
    rank = WholeNumberField(
        required=False, min_value=1, max_value=RANK_MAX, help_text="1-based position it was shown at"
    )

    def validate(self, data: dict) -> dict:
        if ("relevant" in data) == ("grade" in data):
            raise serializers.ValidationError("Give either `relevant` (true or false) or `grade` (0 to 3).")
        return data


class JudgmentSerializer(serializers.ModelSerializer):
    judge = serializers.CharField(read_only=True, help_text="a user name, or `client` and a hash's start")
    stale = serializers.BooleanField(read_only=True, help_text="the document changed after it was judged")

    class Meta:
        model = Judgment
        fields = [
            "id",
            "query",
            "language",
            "document",
            "document_hash",
            "grade",
            "ordering",
            "rank",
            "judge",
            "by_staff",
            "stale",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PublicJudgmentSerializer(serializers.Serializer):
    """What a judge gets back: their own judgment, without who else judged."""

    id = serializers.IntegerField()
    query = serializers.CharField()
    language = serializers.CharField()
    document_id = serializers.IntegerField()
    grade = serializers.IntegerField()
    created = serializers.BooleanField(help_text="false: an earlier judgment of yours was updated")


def _raise_refused(error: judgments.JudgmentRefused) -> None:
    if error.status == status.HTTP_404_NOT_FOUND:
        raise NotFound(str(error)) from error
    if error.status == status.HTTP_403_FORBIDDEN:
        raise PermissionDenied(str(error)) from error
    raise ValidationError({"detail": str(error)}) from error


# A document id in a filter: ASCII digits, no more than a bigint holds.
DOCUMENT_ID = re.compile(r"[0-9]{1,18}")
BOOLEAN_FILTER = {"type": "string", "enum": ["true", "false"]}


@extend_schema_view(
    get=extend_schema(
        parameters=[
            OpenApiParameter("query", str, description="exactly this query (as normalized when judged)"),
            OpenApiParameter("language", {"type": "string", "enum": Language.values}),
            OpenApiParameter("document", {"type": "integer", "minimum": 1}, description="this document's judgments"),
            OpenApiParameter("staff", BOOLEAN_FILTER, description="true: staff judgments only; false: public only"),
            OpenApiParameter("stale", BOOLEAN_FILTER, description="true: only judgments whose document changed"),
        ]
    ),
    post=extend_schema(
        request=JudgmentInputSerializer,
        responses={
            201: PublicJudgmentSerializer,
            200: OpenApiResponse(PublicJudgmentSerializer, description="Your earlier judgment, updated."),
            404: OpenApiResponse(description="No such document in the library."),
        },
    ),
)
class JudgmentListApi(generics.ListCreateAPIView):
    """POST: judge a result (staff, or anyone while JUDGMENTS_PUBLIC). GET (staff): list and filter."""

    permission_classes = [JudgeOrStaffReads]
    throttle_classes = [judgments.JudgmentThrottle]
    serializer_class = JudgmentSerializer

    def get_queryset(self) -> QuerySet[Judgment]:
        found = Judgment.objects.select_related("user", "document").order_by("-updated_at", "-id")
        params = self.request.query_params
        if params.get("query"):
            found = found.filter(query=judgments.query_normalize(params["query"]))
        if params.get("language"):
            if params["language"] not in Language.values:  # NUL and the like never reach PostgreSQL
                raise ValidationError({"language": [f"One of: {', '.join(Language.values)}."]})
            found = found.filter(language=params["language"])
        if params.get("document"):
            if not DOCUMENT_ID.fullmatch(params["document"]):
                raise ValidationError({"document": ["A document id is a whole number."]})
            found = found.filter(document_id=int(params["document"]))
        for name, apply in (("staff", self._by_staff), ("stale", self._stale)):
            if name in params:
                if params[name] not in ("true", "false"):
                    raise ValidationError({name: ["true or false."]})
                found = apply(found, params[name] == "true")
        return found

    @staticmethod
    def _by_staff(found: QuerySet[Judgment], wanted: bool) -> QuerySet[Judgment]:
        return found.filter(by_staff=wanted)

    @staticmethod
    def _stale(found: QuerySet[Judgment], wanted: bool) -> QuerySet[Judgment]:
        changed = found.exclude(document_hash=F("document__content_hash"))
        return changed if wanted else found.filter(document_hash=F("document__content_hash"))

    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        rows = [_judgment_json(j) for j in page]
        return self.get_paginated_response(rows)

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        params = JudgmentInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        binary = GRADE_RELEVANT if data.get("relevant") else GRADE_NOT_RELEVANT
        grade = data.get("grade", binary)
        try:
            judgment, created = judgments.judgment_record(
                request=request,
                query=data["query"],
                document_id=data["document_id"],
                grade=grade,
                ordering=data.get("ordering", Ordering.UNKNOWN),
                rank=data.get("rank"),
            )
        except judgments.JudgmentRefused as error:
            _raise_refused(error)
        body = PublicJudgmentSerializer(
            {
                "id": judgment.pk,
                "query": judgment.query,
                "language": judgment.language,
                "document_id": judgment.document_id,
                "grade": judgment.grade,
                "created": created,
            }
        ).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _judgment_json(judgment: Judgment) -> dict:
    judgment.stale = judgment.document_hash != judgment.document.content_hash
    return JudgmentSerializer(judgment).data


class JudgmentDetailApi(generics.RetrieveDestroyAPIView):
    """GET (staff): one judgment. DELETE (staff): remove it (a spam click, a judge's mistake)."""

    permission_classes = [JudgeOrStaffReads]
    serializer_class = JudgmentSerializer
    http_method_names = ["get", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Judgment]:
        return Judgment.objects.select_related("user", "document")

    def retrieve(self, request: Request, *args: object, **kwargs: object) -> Response:
        return Response(_judgment_json(self.get_object()))
