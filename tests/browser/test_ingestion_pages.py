"""Staff upload files in the admin with a real Chromium, as a person does: the upload page names the
JSON Lines fields with an example, the report links every created document to its page, and a
Markdown file's page shows it rendered (headings, emphasis, lists), never its raw `#` and `**`.

Screenshots of the Markdown document page (desktop and phone) go to docs/screenshots/."""

from __future__ import annotations

import json

import pytest

from tests.support.browser import open_page
from tests.support.processes import ROOT

pytestmark = [pytest.mark.browser]

STAFF_NAME, STAFF_PASSWORD = "upload-staff", "upload-staff-pw-1"
SCREENSHOTS = ROOT / "docs" / "screenshots"
# Words no other test's library holds, so the documents are this module's alone.
MARKDOWN = """# Quinceberry orchard notes

Some **quinceberry** trees need *patient* pruning.

## Soil

- loam
- sand

Read [the grower's page](https://example.org/quinceberry).
"""
RECORDS = [
    {"id": "qb-1", "title": "Quinceberry jam", "text": "Quinceberry jam sets slowly."},
    {"id": "qb-2", "title": "榅桲莓果酱", "text": "榅桲莓果酱需要慢慢熬。", "language": "zh"},
]


# autouse: set up before the module's first test whatever that test is, so before the browser
# fixture starts Playwright's event loop (after it, Django refuses database work in this thread:
# SynchronousOnlyOperation, seen when a random order ran the Swagger test first).
@pytest.fixture(scope="module", autouse=True)
def staff_account(django_db_blocker, live_site):
    """A staff account committed for the live site; it and the documents it uploads are removed after."""
    from django.contrib.auth.models import User

    from documents.models import Document

    with django_db_blocker.unblock():
        user = User.objects.create_user(STAFF_NAME, password=STAFF_PASSWORD, is_staff=True, is_superuser=True)
    yield user
    with django_db_blocker.unblock():
        Document.objects.filter(title__in=["Quinceberry orchard notes", *(r["title"] for r in RECORDS)]).delete()
        user.delete()


def test_staff_upload_files_and_open_what_they_created(staff_account, browser, live_site, tmp_path):
    markdown = tmp_path / "quinceberry.md"
    markdown.write_text(MARKDOWN, encoding="utf-8")
    lines = tmp_path / "quinceberry.jsonl"
    lines.write_text("\n".join(json.dumps(record, ensure_ascii=False) for record in RECORDS), encoding="utf-8")

    page = open_page(browser, 1280, 900)
    page.goto(live_site + "/admin/login/?next=/admin/documents/document/upload/")
    page.fill("input[name=username]", STAFF_NAME)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/documents/document/upload/")
    # The page says which JSON fields it reads, with an example line.
    fields = page.locator("#json-field-list code").all_inner_texts()
    assert {"title", "content, text or body", "language"} <= set(fields), fields
    assert json.loads(page.inner_text("#json-example"))["id"] == "doc-1"

    page.set_input_files("input[name=files]", [str(markdown), str(lines)])
    page.click("input[type=submit][value=Upload]")
    page.wait_for_selector("#upload-results")
    assert "Created 3 documents" in " ".join(page.inner_text(".upload-summary").split())
    links = page.locator(".upload-documents a:not(:text('edit'))")
    titles = links.all_inner_texts()
    assert sorted(titles) == sorted(["Quinceberry orchard notes", *(r["title"] for r in RECORDS)]), titles

    # Every created document links to its own page; the Chinese record's page shows its text.
    # (Opened by their links' addresses: the report is a POST's answer, which "back" would resend.)
    hrefs = {link.inner_text(): link.get_attribute("href") for link in links.all()}
    page.goto(live_site + hrefs["榅桲莓果酱"])
    assert "榅桲莓果酱需要慢慢熬" in page.inner_text("body")

    page.goto(live_site + hrefs["Quinceberry orchard notes"])
    page.wait_for_selector(".markdown h2")
    rendered = page.locator(".markdown")
    assert rendered.locator("h2").inner_text() == "Soil"
    assert rendered.locator("h1").count() == 0  # the title heading is the page's title, shown once
    assert page.locator("h1", has_text="Quinceberry orchard notes").count() == 1
    assert rendered.locator("strong").first.inner_text() == "quinceberry"
    assert rendered.locator("li").all_inner_texts() == ["loam", "sand"]
    assert rendered.locator("a[href='https://example.org/quinceberry']").count() == 1
    text = rendered.inner_text()
    assert "**" not in text and "## " not in text and "](" not in text
    document_url = page.url
    page.screenshot(path=str(SCREENSHOTS / "desktop-markdown-document.png"), full_page=True)
    page.close()

    phone = open_page(browser, 390, 844)
    phone.goto(document_url + "?q=quinceberry")
    phone.wait_for_selector(".markdown h2")
    # The query is marked inside the rendered text, and the page fits the phone's width.
    assert phone.locator(".markdown mark").count() >= 1
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(SCREENSHOTS / "phone-markdown-document.png"), full_page=True)
    phone.close()


def test_swagger_shows_a_padlock_only_where_staff_sign_in(browser, live_site):
    """Operations open to anyone carry no padlock in Swagger UI; the staff-only ones do."""
    page = open_page(browser, 1280, 900)
    page.goto(live_site + "/api/v1/docs")
    page.wait_for_selector(".opblock-summary-path")
    locked, open_ = [], []
    for block in page.locator(".opblock").all():
        summary = block.locator(".opblock-summary-description").inner_text()
        label = f"{block.locator('.opblock-summary-method').inner_text()} {summary}"
        (locked if block.locator(".authorization__btn").count() else open_).append(label)
    assert locked and all("(staff)" in label for label in locked), locked
    assert any("/search" in label or "Search" in label for label in open_), open_
    assert not any("(staff)" in label for label in open_), open_
    assert any("Rerank texts" in label for label in open_), open_
    page.close()
