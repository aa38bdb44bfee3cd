"""Score HTML main-content extractors on the saved pages in tests/data/html_pages/.

For each page and candidate: the share of the main content's sentences kept, of its headings
kept, of the chrome (navigation, banners, related links, comments, footers) dropped, whether the
title is right, and the time per page. Candidates that are not installed are skipped. The
site's own parser (documents.parsers.html) is scored with `--site` from the project's venv.

    python -m bench.html_extraction            # trafilatura, readability-lxml, jusText, plain text
    python -m bench.html_extraction --site     # the site's parser (needs Django settings)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PAGES = Path(__file__).resolve().parent.parent / "tests" / "data" / "html_pages"
BLOCKS = ["p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "pre", "br", "section", "article", "header"]


def _soup_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "head"]):
        tag.decompose()
    for tag in soup.find_all(BLOCKS):
        tag.append("\n")
    return "\n".join(" ".join(line.split()) for line in soup.get_text().splitlines() if line.strip())


def plain(html: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    title = BeautifulSoup(html, "html.parser").title
    return (title.get_text(strip=True) if title else ""), _soup_text(html)


def trafilatura_(html: str) -> tuple[str, str]:
    import trafilatura

    result = trafilatura.bare_extraction(html, include_comments=False, include_tables=True, with_metadata=True)
    return (result.title or ""), (result.text or "")


def readability_(html: str) -> tuple[str, str]:
    from readability import Document

    document = Document(html)
    return document.short_title(), _soup_text(document.summary(html_partial=True))


def justext_(html: str) -> tuple[str, str]:
    import justext
    from bs4 import BeautifulSoup

    language = "Chinese" if 'lang="zh' in html else "English"
    stoplist = justext.get_stoplist(language) if language in justext.get_stoplists() else frozenset()
    paragraphs = justext.justext(html.encode(), stoplist)
    title = BeautifulSoup(html, "html.parser").title
    text = "\n".join(p.text for p in paragraphs if not p.is_boilerplate)
    return (title.get_text(strip=True) if title else ""), text


def site(html: str) -> tuple[str, str]:
    from documents.parsers.html import parse_html

    document = parse_html(html, "page.html")
    return document.title, document.body


CANDIDATES = {
    "plain text (bs4)": plain,
    "trafilatura": trafilatura_,
    "readability-lxml": readability_,
    "jusText": justext_,
}


def score(extract, expected: dict) -> dict:
    totals = {"content": [], "headings": [], "chrome dropped": [], "title": [], "ms": []}
    for name, want in expected.items():
        html = (PAGES / name).read_text(encoding="utf-8")
        started = time.perf_counter()
        for _ in range(5):
            title, text = extract(html)
        totals["ms"].append((time.perf_counter() - started) / 5 * 1000)
        flat = " ".join(text.split())
        lines = {" ".join(line.split()) for line in text.splitlines()}
        totals["content"].append(sum(piece in flat for piece in want["content"]) / len(want["content"]))
        totals["headings"].append(sum(heading in lines for heading in want["headings"]) / len(want["headings"]))
        chrome = want["boilerplate"]
        totals["chrome dropped"].append(sum(piece not in flat for piece in chrome) / len(chrome))
        totals["title"].append(1.0 if title.strip() == want["title"] else 0.0)
    return {key: sum(values) / len(values) for key, values in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", action="store_true", help="score the site's own parser only")
    args = parser.parse_args()
    expected = json.loads((PAGES / "expected.json").read_text(encoding="utf-8"))
    candidates = {"site (documents.parsers.html)": site} if args.site else CANDIDATES
    if args.site:
        import django

        django.setup()
    print("| candidate | content kept | headings kept | chrome dropped | title right | ms a page |")
    print("|---|---|---|---|---|---|")
    for name, extract in candidates.items():
        try:
            result = score(extract, expected)
        except ImportError as error:
            print(f"| {name} | not installed ({error.name}) | | | | |", file=sys.stderr)
            continue
        print(
            f"| {name} | {result['content']:.0%} | {result['headings']:.0%} | {result['chrome dropped']:.0%} "
            f"| {result['title']:.0%} | {result['ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
