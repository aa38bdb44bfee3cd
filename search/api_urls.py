"""The search and rerank REST API's URLs (v1, Cohere v2, TEI); searchsite/urls.py mounts them,
beside the whole API's schema and docs (searchsite.api_schema)."""

from django.urls import path

from search import api, rerank_api

urlpatterns = [
    path("search", api.SearchApi.as_view(), name="api-search"),
    path("rerank", rerank_api.CohereRerankApi.as_view(), name="api-rerank"),
    path("status", rerank_api.StatusApi.as_view(), name="api-status"),
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
