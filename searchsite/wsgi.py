"""WSGI entry point for gunicorn (and for runserver, through WSGI_APPLICATION)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
application = get_wsgi_application()

# Load jieba's dictionary now rather than during the first Chinese search (~0.7 s).
from documents.textsearch import warm_up  # noqa: E402

warm_up()
