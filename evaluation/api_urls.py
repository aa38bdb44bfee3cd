"""The judgments REST API's URLs, under /api/v1/ (searchsite/urls.py)."""

from django.urls import path

from evaluation import api

urlpatterns = [
    path("judgments", api.JudgmentListApi.as_view(), name="api-judgments"),
    path("judgments/<int:pk>", api.JudgmentDetailApi.as_view(), name="api-judgment"),
]
