"""The search and rerank REST API's URLs (v1, Cohere v2, TEI) with the schema and its docs
(searchsite/urls.py mounts them)."""

from django.urls import path
from drf_spectacular.views import SpectacularSwaggerSplitView

from search import api, rerank_api
from searchsite.api_schema import SchemaApi

urlpatterns = [
    path("search", api.SearchApi.as_view(), name="api-search"),
    path("rerank", rerank_api.CohereRerankApi.as_view(), name="api-rerank"),
    path("status", rerank_api.StatusApi.as_view(), name="api-status"),
    path("schema", SchemaApi.as_view(), name="api-schema"),
    # Its start-up script is served as a file of its own (?script), not inline: the page keeps the CSP.
    path(
        "docs",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/docs.html"),
        name="api-docs",
    ),
]

# Cohere's v2 client (cohere.ClientV2, base_url=<site>/api) posts to /api/v2/rerank.
v2_urlpatterns = [
    path("rerank", rerank_api.CohereRerankV2Api.as_view(), name="api-v2-rerank"),
]
# TEI clients take <site>/api/tei as the server's base URL.
tei_urlpatterns = [
    path("rerank", rerank_api.TeiRerankApi.as_view(), name="api-tei-rerank"),
    path("info", rerank_api.TeiInfoApi.as_view(), name="api-tei-info"),
]
