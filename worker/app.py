"""The Celery app that web and worker share, configured from Django settings (namespace CELERY).

The web sends work on it by task name (search.worker_client, the only code that does); the worker
serves worker.tasks on it. `celery -A searchsite` finds it as searchsite.celery_app
(searchsite/__init__.py), so the worker's command line (worker.command) and the images keep it.
Imports neither Django's models nor torch.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")

app = Celery("searchsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The worker imports worker.tasks at start; the web process sends tasks by name only, so it
# never imports the model code (and never torch).
app.conf.imports = ("worker.tasks",)
