"""Layer boundaries: the web process never loads torch or the model code (see DESIGN)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from tests.support.processes import ROOT
from tests.support.session import SESSION_QUEUE, child_env

MODEL_MODULES = ("torch", "sentence_transformers", "transformers")

# Runs in a fresh interpreter: set up Django as the web process does, serve a search and the
# API through the test client, then report which model modules got imported.
WEB_PROCESS = """
import json, sys
import searchsite.wsgi  # what gunicorn loads
import search.views, search.api, search.worker_client, searchsite.urls
from django.test import Client

client = Client(REMOTE_ADDR=ADDRESS)  # no throttle history shared with other tests
page = client.get("/search", {"q": "python snake diet"})
api = client.get("/api/v1/search", {"q": "苹果营养价值"})
loaded = sorted(name for name in sys.modules if name.split(".")[0] in MODEL_MODULES)
print(json.dumps({
    "page": page.status_code,
    "api": api.status_code,
    "candidates": api.json()["candidate_count"],
    "reranked": api.json()["reranked_applied"],
    "loaded": loaded,
}))
"""


def test_it_never_imports_torch_in_the_web_process(rerank_worker, django_db_setup):
    raw = uuid.uuid4().bytes
    address = f"10.{raw[0]}.{raw[1]}.{raw[2]}"
    script = f"MODEL_MODULES = {MODEL_MODULES!r}\nADDRESS = {address!r}\n{WEB_PROCESS}"
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=child_env(RERANK_QUEUE=SESSION_QUEUE, RERANK_TIMEOUT="30", DJANGO_SETTINGS_MODULE="searchsite.settings"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["page"] == report["api"] == 200
    assert report["candidates"] > 0
    assert report["reranked"] is True  # the model ran, in the worker
    assert report["loaded"] == []
