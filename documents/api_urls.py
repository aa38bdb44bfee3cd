"""The documents REST API's URLs, under /api/v1/ (searchsite/urls.py)."""

from django.urls import path

from documents import api

urlpatterns = [
    path("documents", api.DocumentListApi.as_view(), name="api-documents"),
    path("documents/upload", api.DocumentUploadApi.as_view(), name="api-documents-upload"),
    path("documents/<int:pk>", api.DocumentDetailApi.as_view(), name="api-document"),
]
