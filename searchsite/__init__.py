"""The Django project: settings, URLs and the embedded dev stack; `celery -A searchsite` finds the
Celery app here (defined in worker/app.py)."""

from worker.app import app as celery_app

__all__ = ("celery_app",)
