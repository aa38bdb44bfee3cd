"""POST /api/v1/judgments with the page's rules; staff list, filter and delete; in the schema."""

from __future__ import annotations

import pytest

from evaluation.models import Judgment

pytestmark = pytest.mark.django_db

QUERY = "mercury toxicity"


def test_it_takes_a_public_judgment_and_counts_repeats_once(anon_api, documents):
    body = {"query": QUERY, "document_id": documents[0].pk, "relevant": True}
    first = anon_api.post("/api/v1/judgments", body, format="json")
    assert first.status_code == 201, first.json()
    assert first.json()["grade"] == 1 and first.json()["created"] is True
    again = anon_api.post("/api/v1/judgments", {**body, "relevant": False}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert list(Judgment.objects.values_list("grade", "by_staff")) == [(0, False)]


def test_it_lets_only_staff_grade_finer(anon_api, staff_api, documents):
    body = {"query": QUERY, "document_id": documents[0].pk, "grade": 3}
    refused = anon_api.post("/api/v1/judgments", body, format="json")
    assert refused.status_code == 403 and "Only staff" in refused.json()["error"]
    graded = staff_api.post("/api/v1/judgments", {**body, "ordering": "reranked", "rank": 2}, format="json")
    assert graded.status_code == 201
    judgment = Judgment.objects.get()
    assert (judgment.grade, judgment.by_staff, judgment.ordering, judgment.rank) == (3, True, "reranked", 2)


@pytest.mark.parametrize(
    "body",
    [
        {"query": QUERY, "document_id": 1},  # neither relevant nor grade
        {"query": QUERY, "document_id": 1, "relevant": True, "grade": 1},  # both
        {"query": QUERY, "document_id": 1, "grade": 4},
        {"query": QUERY, "document_id": "x", "relevant": True},
        {"query": "   ", "document_id": 1, "relevant": True},
        {"document_id": 1, "relevant": True},
    ],
)
def test_it_refuses_bad_input_and_stores_nothing(staff_api, body):
    response = staff_api.post("/api/v1/judgments", body, format="json")
    assert response.status_code == 400, response.json()
    assert "error" in response.json()
    assert not Judgment.objects.exists()


def test_it_answers_404_for_a_document_outside_the_library(anon_api):
    response = anon_api.post(
        "/api/v1/judgments", {"query": QUERY, "document_id": 999_999_999, "relevant": True}, format="json"
    )
    assert response.status_code == 404


def test_it_refuses_the_public_when_switched_off(anon_api, staff_api, documents, settings):
    settings.JUDGMENTS_PUBLIC = False
    body = {"query": QUERY, "document_id": documents[0].pk, "relevant": True}
    assert anon_api.post("/api/v1/judgments", body, format="json").status_code == 403
    assert staff_api.post("/api/v1/judgments", body, format="json").status_code == 201
    assert Judgment.objects.filter(by_staff=True).count() == 1 == Judgment.objects.count()


def test_it_throttles_public_judging(anon_api, documents, judging_rate):
    judging_rate("2/min")
    codes = [
        anon_api.post(
            "/api/v1/judgments", {"query": QUERY, "document_id": d.pk, "relevant": True}, format="json"
        ).status_code
        for d in documents[:3]
    ]
    assert codes == [201, 201, 429]
    assert Judgment.objects.count() == 2


def test_it_lists_filters_and_deletes_for_staff_only(anon_api, staff_api, documents):
    anon_api.post(
        "/api/v1/judgments", {"query": QUERY, "document_id": documents[0].pk, "relevant": True}, format="json"
    )
    staff_api.post("/api/v1/judgments", {"query": QUERY, "document_id": documents[1].pk, "grade": 2}, format="json")
    assert anon_api.get("/api/v1/judgments").status_code in (401, 403)
    listed = staff_api.get("/api/v1/judgments", {"query": f"  {QUERY} "}).json()
    assert listed["count"] == 2
    staff_only = staff_api.get("/api/v1/judgments", {"staff": "true"}).json()["results"]
    assert [row["document"] for row in staff_only] == [documents[1].pk]
    assert staff_only[0]["judge"] == "judge-staff" and staff_only[0]["stale"] is False
    public = staff_api.get("/api/v1/judgments", {"staff": "false"}).json()["results"]
    assert public[0]["judge"].startswith("client ") and public[0]["by_staff"] is False
    assert staff_api.get("/api/v1/judgments", {"staff": "maybe"}).status_code == 400
    assert staff_api.get("/api/v1/judgments", {"document": "²"}).status_code == 400
    target = public[0]["id"]
    assert anon_api.delete(f"/api/v1/judgments/{target}").status_code in (401, 403)
    assert staff_api.delete(f"/api/v1/judgments/{target}").status_code == 204
    assert list(Judgment.objects.values_list("document_id", flat=True)) == [documents[1].pk]


def test_it_is_in_the_openapi_schema(client):
    schema = client.get("/api/v1/schema", {"format": "json"}).json()
    operations = schema["paths"]["/api/v1/judgments"]
    assert {"get", "post"} <= set(operations)
    assert "delete" in schema["paths"]["/api/v1/judgments/{id}"]
    request = operations["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][request.rsplit("/", 1)[1]]["properties"]
    assert {"query", "document_id", "relevant", "grade"} <= set(fields)
    assert {"201", "200", "403", "429"} <= set(operations["post"]["responses"])
    assert {"401", "403"} <= set(operations["get"]["responses"])
