"""JSON and JSON Lines: one document per record, a message per unreadable record, the rest kept.
Pure, no ORM."""

from __future__ import annotations

import json

from documents.inputs import DocumentInput, clean_text
from documents.json_limits import MAX_JSON_DEPTH, nesting_problem
from documents.parsers.common import ParsedFile, ParseError, document, summarize_problems

JSON_EXTENSIONS = {".json": "JSON", ".jsonl": "JSON Lines"}
TOO_DEEP = f"the JSON nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects"
JSON_TEXT_FIELDS = ("content", "text", "body")
JSON_KNOWN_FIELDS = {"title", *JSON_TEXT_FIELDS, "language", "source", "url", "id", "_id", "metadata"}
# What the upload page tells about the fields above (documents/templates/.../upload.html).
JSON_FIELDS = [
    ("id (or _id)", "its id in your source: importing the same id again updates that document, never copies it"),
    ("title", "optional: the first line of the text when missing"),
    ("content, text or body", "required: the text (the first of them present)"),
    ("language", "optional: en, zh or mixed; detected from the text when missing"),
    ("source or url", "optional: where it came from (the file's name when missing)"),
    ("metadata", "optional: an object, stored as it is; any other field is kept in it too"),
]
JSON_EXAMPLE = (
    '{"id": "doc-1", "title": "Granny Smith apples", "text": "Granny Smith apples are green and tart.", '
    '"language": "en", "url": "https://example.org/apples", "metadata": {"year": 2024}}'
)
LANGUAGE_ALIASES = {"en": "en", "english": "en", "zh": "zh", "chinese": "zh", "cn": "zh", "mixed": "mixed"}


def parse_json(text: str, source: str, *, lines: bool) -> ParsedFile:
    """Return the readable records of a JSON (`lines`: JSON Lines) file's text as documents."""
    if not text.strip():
        raise ParseError("the file has no records")
    if lines:
        return _parse_json_lines(text, source)
    problem = nesting_problem(text)
    if problem:
        raise ParseError(problem)
    try:
        value = json.loads(text)
    except RecursionError:
        raise ParseError(TOO_DEEP) from None
    except json.JSONDecodeError as error:
        if error.msg == "Extra data" and text.lstrip().startswith("{"):
            return _parse_json_lines(text, source)  # JSON Lines saved as .json
        raise ParseError(f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    if not isinstance(value, list | dict):
        raise ParseError("the JSON file must hold an object or a list of objects")
    if value == []:
        raise ParseError("the JSON list is empty")
    items: list[DocumentInput] = []
    problems: list[str] = []
    for number, record in enumerate(value if isinstance(value, list) else [value], 1):
        try:
            items.append(_record(record, source))
        except ParseError as error:
            problems.append(f"item {number}: {error}")
    return _collected(items, problems)


def _parse_json_lines(text: str, source: str) -> ParsedFile:
    items: list[DocumentInput] = []
    problems: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        # Only a line with more brackets than the depth limit can nest too deeply (cheap to count).
        if line.count("[") + line.count("{") > MAX_JSON_DEPTH and (problem := nesting_problem(line)):
            problems.append(f"line {number}: {problem}")
            continue
        try:
            record = json.loads(line)
        except RecursionError:
            problems.append(f"line {number}: {TOO_DEEP}")
            continue
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: invalid JSON at column {error.colno}: {error.msg}")
            continue
        try:
            items.append(_record(record, source))
        except ParseError as error:
            problems.append(f"line {number}: {error}")
    return _collected(items, problems)


def _collected(items: list[DocumentInput], problems: list[str]) -> ParsedFile:
    if not items:
        raise ParseError(f"no document in the file could be read: {summarize_problems(problems)}")
    return ParsedFile(items, problems)


def _record(record: object, source: str) -> DocumentInput:
    if not isinstance(record, dict):
        raise ParseError(f"expected an object with title and content, got {type(record).__name__}")
    body = next((record[name] for name in JSON_TEXT_FIELDS if name in record and record[name] is not None), None)
    if body is None:
        raise ParseError("no text: the object needs a `content`, `text` or `body` field")
    if not isinstance(body, str):
        raise ParseError(f"the text field must be a string, not {type(body).__name__}")
    if not body.strip():
        raise ParseError("the text field is empty")
    identifier = record.get("id", record.get("_id"))
    url = record.get("url")
    metadata: dict = {}
    if isinstance(record.get("metadata"), dict):
        metadata.update(record["metadata"])
    metadata.update({key: value for key, value in record.items() if key not in JSON_KNOWN_FIELDS})
    if url:
        metadata["url"] = url
    return document(
        _as_text(record.get("title")),
        clean_text(body),
        _as_text(record.get("source")) or _as_text(url) or source,
        language=_language(record.get("language")),
        external_id=_as_text(identifier),
        metadata=metadata,  # cleaned of NULs with the rest by documents.services
    )


def _as_text(value: object) -> str:
    return "" if value is None else clean_text(str(value))


def _language(value: object) -> str | None:
    """Return en / zh / mixed for the common spellings (zh-CN, English); None lets us detect it."""
    if not isinstance(value, str):
        return None
    code = value.strip().lower()
    return LANGUAGE_ALIASES.get(code) or LANGUAGE_ALIASES.get(code.split("-")[0].split("_")[0])
