"""The admin groups judgments by query, with the judges' agreement; conflicts are flagged."""

from __future__ import annotations

import pytest
from django.contrib.admin.templatetags.admin_list import result_headers
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.support.clients import unique_address

pytestmark = pytest.mark.django_db

QUERY = "python snake diet"


def post(api: APIClient, document_id: int, relevant: bool) -> None:
    response = api.post(
        "/api/v1/judgments", {"query": QUERY, "document_id": document_id, "relevant": relevant}, format="json"
    )
    assert response.status_code == 201


def test_it_flags_conflicts_and_filters_staff(staff_client, staff_api, documents):
    other = APIClient(REMOTE_ADDR=unique_address())
    other.force_authenticate(User.objects.create_user("second-staff", is_staff=True))
    public = APIClient(REMOTE_ADDR=unique_address())
    post(staff_api, documents[0].pk, True)
    post(other, documents[0].pk, True)  # agree
    post(staff_api, documents[1].pk, True)
    post(other, documents[1].pk, False)  # staff disagree
    post(public, documents[2].pk, False)
    post(staff_api, documents[2].pk, True)  # a public judge disagrees with staff

    page = staff_client.get("/admin/evaluation/judgment/by-query/")
    assert page.status_code == 200
    row = page.context["rows"][0]
    assert (row.query, row.judges, row.shared, row.agreed) == (QUERY, 3, 3, 1)
    assert row.conflicts == [documents[1].pk, documents[2].pk] and not row.staff_only
    assert "⚠ 2" in page.content.decode()

    staff_only = staff_client.get("/admin/evaluation/judgment/by-query/", {"staff": "1"}).context["rows"][0]
    assert staff_only.conflicts == [documents[1].pk] and staff_only.staff_only and staff_only.judges == 2

    changelist = staff_client.get("/admin/evaluation/judgment/", {"conflict": "yes"})
    flagged = {j.document_id for j in changelist.context["cl"].result_list}
    assert flagged == {documents[1].pk, documents[2].pk}
    assert "conflict" in changelist.content.decode()
    assert staff_client.get("/admin/evaluation/judgment/", {"judge": "staff"}).context["cl"].result_count == 5


def test_the_list_shows_grade_judge_kind_and_date_with_a_filter_titled_in_words(
    staff_client, staff_api, plain_user, documents
):
    reader = APIClient(REMOTE_ADDR=unique_address())
    reader.force_authenticate(plain_user)
    post(staff_api, documents[0].pk, True)
    post(reader, documents[1].pk, False)
    post(APIClient(REMOTE_ADDR=unique_address()), documents[2].pk, True)

    page = staff_client.get("/admin/evaluation/judgment/")
    html = page.content.decode()
    headers = [str(header["text"]) for header in result_headers(page.context["cl"])]
    assert {"grade", "judge", "judge kind", "judged"} <= set(headers), headers
    assert "By by staff" not in html and "By judge kind" in html
    for shown in ("1 · relevant", "0 · not relevant", "staff", "signed-in visitor", "anonymous visitor"):
        assert f">{shown}<" in html, shown
    counts = {
        kind: staff_client.get("/admin/evaluation/judgment/", {"judge": kind}).context["cl"].result_count
        for kind in ("staff", "user", "anonymous")
    }
    assert counts == {"staff": 1, "user": 1, "anonymous": 1}


def test_it_is_for_staff_only(client):
    response = client.get("/admin/evaluation/judgment/by-query/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
