"""The Celery app, configured from Django settings (namespace CELERY)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")

app = Celery("searchsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The worker imports worker.tasks at start; the web process sends tasks by name only, so it
# never imports the model code (and never torch).
app.conf.imports = ("worker.tasks",)
