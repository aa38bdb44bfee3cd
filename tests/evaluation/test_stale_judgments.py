"""A judgment of a document that changed since is stale: left out of the figures and reported."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from documents.services import document_update
from evaluation.judgments import judged_set
from evaluation.models import EvaluationRun

pytestmark = pytest.mark.django_db


def test_it_reports_judgments_of_an_edited_document_as_stale(staff_api, documents, tmp_path: Path):
    for document in documents[:2]:
        staff_api.post(
            "/api/v1/judgments", {"query": "apple", "document_id": document.pk, "relevant": True}, format="json"
        )
    assert judged_set().stale == []
    judged_hash = documents[0].content_hash
    edited = document_update(document=documents[0], body=documents[0].body + "\n\nA paragraph added later.")
    assert edited.content_hash != judged_hash

    judged = judged_set()
    assert [item["document_id"] for item in judged.stale] == [documents[0].pk]
    assert judged.judgments == 1
    assert judged_set(include_stale=True).judgments == 2
    listed = staff_api.get("/api/v1/judgments", {"stale": "true"}).json()["results"]
    assert [row["document"] for row in listed] == [documents[0].pk] and listed[0]["stale"] is True

    output = tmp_path / "out"
    call_command(
        "evaluate", "--judgments", "--no-rerank", "--output", str(output), stdout=io.StringIO(), stderr=io.StringIO()
    )
    report = json.loads((output / "results.json").read_text())
    assert [item["document_id"] for item in report["judgments"]["stale"]] == [documents[0].pk]
    assert (
        "Stale judgments (the document changed after it was judged), left out of the figures: 1."
        in (output / "report.md").read_text()
    )
    run = EvaluationRun.objects.get()
    assert run.source == "judgments" and len(run.report["judgments"]["stale"]) == 1
