from django.urls import path

from evaluation import views

app_name = "evaluation"
urlpatterns = [
    path("judgments", views.judge, name="judge"),
    path("evaluation/", views.runs_page, name="runs"),
    path("evaluation/runs/<int:pk>", views.run_page, name="run"),
    path("evaluation/jobs", views.job_start, name="job_start"),
    path("evaluation/jobs/<int:pk>", views.job_page, name="job"),
    path("evaluation/runs/<int:pk>/chart.png", views.run_chart, name="chart"),
]
