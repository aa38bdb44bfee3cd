"""Security headers on our pages, and pages that the Content-Security-Policy lets run as written."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from documents.models import LIBRARY, Document

pytestmark = pytest.mark.django_db

# URLs that run code inline, which a policy without 'unsafe-inline' blocks.
FORBIDDEN_URL_SCHEMES = ("javascript:",)


def csp_directives(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def pages() -> list[str]:
    document = Document.objects.filter(collection=LIBRARY).order_by("pk").first()
    urls = ["/", "/search?q=apple", "/admin/login/", "/api/v1/docs"]
    if document is not None:
        urls.append(f"/documents/{document.pk}?q=apple")
    return urls


@pytest.fixture(autouse=True)
def _short_rerank_wait(settings):
    # No worker serves this test's queue: do not wait the full budget for it.
    settings.RERANK_TIMEOUT = 0.2


def test_home_page_sends_security_headers(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"]
    directives = csp_directives(response["Content-Security-Policy"])
    assert "'self'" in directives["script-src"]
    for directive in ("script-src", "style-src", "default-src"):
        assert "'unsafe-inline'" not in directives.get(directive, []), directive
        assert "'unsafe-eval'" not in directives.get(directive, []), directive
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]


def test_every_page_of_ours_has_the_policy(client) -> None:
    for url in pages():
        response = client.get(url)
        assert response.status_code == 200, url
        assert "script-src 'self'" in response["Content-Security-Policy"], url


def test_pages_have_no_inline_script_or_style(client) -> None:
    for url in pages():
        response = client.get(url)
        soup = BeautifulSoup(response.content.decode(), "html.parser")
        problems = []
        for script in soup.find_all("script"):
            if not script.get("src") or script.get_text(strip=True):
                problems.append(f"inline <script>: {str(script)[:80]}")
        problems += [f"<style> element: {str(style)[:80]}" for style in soup.find_all("style")]
        for tag in soup.find_all(True):
            for attribute, value in tag.attrs.items():
                if attribute == "style":
                    problems.append(f'style="..." on <{tag.name}>')
                elif attribute.startswith("on"):
                    problems.append(f"event handler {attribute} on <{tag.name}>")
                elif attribute in ("href", "src", "action") and str(value).strip().lower().startswith(
                    FORBIDDEN_URL_SCHEMES
                ):
                    problems.append(f"{attribute}={value!r} on <{tag.name}>")
        assert not problems, f"{url}: the CSP blocks {problems}"


def test_scripts_and_styles_come_from_our_own_origin(client) -> None:
    response = client.get("/")
    soup = BeautifulSoup(response.content.decode(), "html.parser")
    sources = [tag["src"] for tag in soup.find_all("script", src=True)]
    sources += [tag["href"] for tag in soup.find_all("link", rel="stylesheet")]
    assert sources, "the page loads no stylesheet at all?"
    for source in sources:
        assert source.startswith("/") and not source.startswith("//"), source
