"""The Django project: settings, URLs, the Celery app and the embedded dev stack."""

from searchsite.celery import app as celery_app

__all__ = ("celery_app",)
