"""A real Chromium opens the admin and the API docs under the site's Content-Security-Policy (no
inline script or style): each page is sent the policy, works (the admin's scripts run, Swagger UI
draws the operations; with its start-up script inline it drew nothing), and the browser reports no
violation of it."""

from __future__ import annotations

import pytest

from searchsite.middleware import CONTENT_SECURITY_POLICY
from tests.support.browser import open_page

pytestmark = [pytest.mark.browser]

STAFF_NAME, STAFF_PASSWORD = "csp-staff", "csp-staff-pw-1"


# autouse: set up before the browser fixture starts Playwright's event loop, whichever test runs
# first (after it, Django refuses database work in this thread: SynchronousOnlyOperation).
@pytest.fixture(scope="module", autouse=True)
def staff_account(django_db_blocker, live_site):
    """A staff account committed for the live site; removed after."""
    from django.contrib.auth.models import User

    with django_db_blocker.unblock():
        user = User.objects.create_user(STAFF_NAME, password=STAFF_PASSWORD, is_staff=True, is_superuser=True)
    yield user
    with django_db_blocker.unblock():
        user.delete()


def watch_for_violations(page) -> list[str]:
    """Return a list that fills with the browser's reports of Content-Security-Policy violations."""
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return violations


def policy_of(response) -> str:
    return response.headers.get("content-security-policy", "")


def test_the_admin_works_under_the_sites_policy(staff_account, browser, live_site, artifacts_dir):
    page = open_page(browser, 1280, 900)
    violations = watch_for_violations(page)
    login = page.goto(live_site + "/admin/")
    assert policy_of(login) == CONTENT_SECURITY_POLICY
    page.fill("input[name=username]", STAFF_NAME)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    for path in (
        "/admin/documents/document/",
        "/admin/documents/document/upload/",
        "/admin/evaluation/judgment/",
        "/admin/evaluation/judgment/by-query/",
        "/admin/auth/user/add/",
    ):
        response = page.goto(live_site + path)
        assert response.status == 200, path
        assert policy_of(response) == CONTENT_SECURITY_POLICY, path
        page.wait_for_load_state("load")
    # The admin's own scripts ran: the navigation sidebar's toggle is wired up by nav_sidebar.js.
    page.goto(live_site + "/admin/documents/document/")
    shifted = "document.querySelector('#main').classList.contains('shifted')"
    before = page.evaluate(shifted)
    page.click("#toggle-nav-sidebar")
    assert page.evaluate(shifted) is not before
    page.screenshot(path=str(artifacts_dir / "admin-under-csp.png"))
    assert violations == []
    page.close()


def test_the_api_docs_work_under_the_sites_policy(browser, live_site, artifacts_dir):
    page = open_page(browser, 1280, 900)
    violations = watch_for_violations(page)
    response = page.goto(live_site + "/api/v1/docs")
    assert response.status == 200
    assert policy_of(response) == CONTENT_SECURITY_POLICY
    page.wait_for_selector(".opblock-summary-path")  # Swagger UI read the schema and drew the operations
    assert page.locator(".opblock").count() > 5
    page.screenshot(path=str(artifacts_dir / "api-docs-under-csp.png"))
    assert violations == []
    page.close()
