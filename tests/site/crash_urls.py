"""The site's URLs plus one API view that always crashes (tests/site/test_api_errors.py)."""

from django.urls import path

from searchsite.urls import urlpatterns as site_urlpatterns


def crash(request):
    raise RuntimeError("this view always fails")


urlpatterns = [path("api/v1/crash", crash), *site_urlpatterns]
