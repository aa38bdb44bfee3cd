from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from documents import api as documents_api
from search import api

urlpatterns = [
    path("search", api.SearchApi.as_view(), name="api-search"),
    path("rerank", api.RerankApi.as_view(), name="api-rerank"),
    path("documents", documents_api.DocumentListApi.as_view(), name="api-documents"),
    path("documents/upload", documents_api.DocumentUploadApi.as_view(), name="api-documents-upload"),
    path("documents/<int:pk>", documents_api.DocumentDetailApi.as_view(), name="api-document"),
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
