"""REST API for the document library: anyone reads, staff (token or session) write."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from documents.inputs import DocumentInput, IngestError
from documents.models import LIBRARY, Document, Language
from documents.services import document_create, document_update, documents_delete


class IsStaffOrReadOnly(BasePermission):
    """Reads for everyone; writes only for staff users."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        # A method the view does not take is answered 405 by the view, whoever asks: these paths
        # are open to anonymous clients, and the schema says so (searchsite.api_schema).
        if request.method in ("GET", "HEAD", "OPTIONS") or request.method not in view.allowed_methods:
            return True
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class DocumentSerializer(serializers.ModelSerializer):
    language = serializers.ChoiceField(choices=Language.values, required=False)
    chunk_count = serializers.IntegerField(source="chunks.count", read_only=True)

    class Meta:
        model = Document
        fields = [
            "id",
            "title",
            "body",
            "language",
            "source",
            "external_id",
            "metadata",
            "content_hash",
            "chunk_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "content_hash", "chunk_count", "created_at", "updated_at"]
        extra_kwargs = {"body": {"trim_whitespace": False}}


@extend_schema_view(
    post=extend_schema(
        responses={
            201: DocumentSerializer,
            200: OpenApiResponse(
                DocumentSerializer,
                description="An identical document is already stored: that one, with duplicate: true.",
            ),
        }
    )
)
class DocumentListApi(generics.ListCreateAPIView):
    """GET: the library, newest first (paginated). POST (staff): create one document."""

    permission_classes = [IsStaffOrReadOnly]
    serializer_class = DocumentSerializer

    def get_queryset(self):
        return Document.objects.filter(collection=LIBRARY).prefetch_related("chunks")

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            result = document_create(
                item=DocumentInput(
                    title=data.get("title", ""),
                    body=data.get("body", ""),
                    language=data.get("language"),
                    source=data.get("source", ""),
                    external_id=data.get("external_id", ""),
                    metadata=data.get("metadata") or {},
                )
            )
        except IngestError as error:
            return Response({"error": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        body = self.get_serializer(result.document).data
        body["duplicate"] = not result.created
        return Response(body, status=code)


class DocumentDetailApi(generics.RetrieveUpdateDestroyAPIView):
    """GET one document; PUT/PATCH (staff) re-chunk and re-index it; DELETE (staff)."""

    permission_classes = [IsStaffOrReadOnly]
    serializer_class = DocumentSerializer

    def get_queryset(self):
        return Document.objects.filter(collection=LIBRARY)

    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        document = self.get_object()
        serializer = self.get_serializer(document, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        try:
            document = document_update(document=document, **serializer.validated_data)
        except IngestError as error:
            return Response({"error": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.get_serializer(document).data)

    def perform_destroy(self, instance: Document) -> None:
        documents_delete(documents=[instance])


class DocumentUploadApi(APIView):
    """POST (staff, multipart `files`): ingest files with the admin's rules; one result per file."""

    permission_classes = [IsAdminUser]
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1}
                },
                "required": ["files"],
            }
        },
        responses={200: {"type": "object"}},
    )
    def post(self, request: Request) -> Response:
        from documents.ingest import ingest_upload

        files = request.FILES.getlist("files")
        if not files:
            return Response({"error": "send one or more files in the multipart field `files`"}, status=400)
        reports = [ingest_upload(uploaded).as_dict() for uploaded in files]
        return Response({"files": reports})
