"""The judging controls on the result page, and template filters of the evaluation page.

The result page (templates/search/results.html) asks for the judging state once
(`{% judging_state as judging %}`: whether this visitor may judge, and their grades of the page's
documents, one query) and puts the controls under each result (`{% judge_controls judging row %}`).
So the search app never imports the evaluation app: the templates wire the two together.
"""

from django import template

from evaluation.pages import judging_context

register = template.Library()


@register.simple_tag(takes_context=True)
def judging_state(context: template.Context) -> dict:
    """Return the result page's judging state for its query and the documents it shows."""
    outcome = context.get("outcome")
    rows = [*outcome.fulltext, *outcome.reranked] if outcome is not None else []
    return judging_context(
        request=context["request"], query=context.get("query") or "", document_ids=[r.document_id for r in rows]
    )


@register.inclusion_tag("evaluation/_judge.html", takes_context=True)
def judge_controls(context: template.Context, judging: dict, row: object) -> dict:
    """Return the judging form of one result (nothing when the visitor may not judge)."""
    return {
        "allowed": bool(judging and judging.get("allowed")),
        "grade": (judging.get("grades") or {}).get(row.document_id) if judging else None,
        "query": context.get("query"),
        "row": row,
        "column": context.get("column"),
        "rank": context.get("rank"),
        "state": context.get("state"),
    }


@register.filter
def lookup(mapping: dict, key: str):
    """Return mapping[key], None when missing (the evaluation page's metric tables)."""
    return (mapping or {}).get(key)
