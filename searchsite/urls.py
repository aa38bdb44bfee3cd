"""URLs: pages, the REST API (v1, and Cohere v2 and TEI rerank) with its schema and docs, the admin, health."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerSplitView

from search import api_urls
from search.views import healthz
from searchsite import admin_login
from searchsite.api_schema import SchemaApi

urlpatterns = [
    path("", include("search.urls")),
    path("", include("evaluation.urls")),
    path("api/v1/", include("search.api_urls")),
    # The schema of the whole API (every app's endpoints), and its docs page.
    path("api/v1/schema", SchemaApi.as_view(), name="api-schema"),
    # Its start-up script is served as a file of its own (?script), not inline: the page keeps the CSP.
    path(
        "api/v1/docs",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/docs.html"),
        name="api-docs",
    ),
    path("api/v2/", include(api_urls.v2_urlpatterns)),
    path("api/tei/", include(api_urls.tei_urlpatterns)),
    path("api/v1/", include("evaluation.api_urls")),
    path("api/v1/", include("documents.api_urls")),
    # Before the admin's own URLs: its login, with a limit on wrong passwords.
    path("admin/login/", admin_login.login, name="admin-login"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]

# JSON under /api/, Django's pages elsewhere (searchsite.errors).
handler400 = "searchsite.errors.bad_request"
handler404 = "searchsite.errors.not_found"
handler500 = "searchsite.errors.server_error"
