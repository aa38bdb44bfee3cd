from django.urls import path

from search import views

app_name = "search"
urlpatterns = [
    path("", views.search_page, name="home"),
    path("search", views.search_page, name="search"),
    path("search/results", views.results_fragment, name="results"),
    path("documents/<int:pk>", views.document_page, name="document"),
]
