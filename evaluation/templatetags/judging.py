"""Template filters of the judging controls and the evaluation page."""

from django import template

register = template.Library()


@register.filter
def grade_for(grades: dict, document_id: int) -> int | None:
    """Return the visitor's grade of a document from {document id: grade}, None if not judged."""
    return (grades or {}).get(document_id)


@register.filter
def lookup(mapping: dict, key: str):
    """Return mapping[key], None when missing (the evaluation page's metric tables)."""
    return (mapping or {}).get(key)
