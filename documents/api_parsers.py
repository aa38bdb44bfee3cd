"""The REST API's JSON body parsers, for every app's endpoints (REST_FRAMEWORK's
DEFAULT_PARSER_CLASSES; the rerank APIs count tokens too): size and nesting (and, where a shape is
bounded, the number of tokens) checked before json.loads (documents.json_limits). The file formats
a document is imported from are parsed elsewhere, in documents/parsers/."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json as drf_json

from documents.json_limits import nesting_problem, tokens_problem


def too_large_message() -> str:
    """Return the answer to a body over DATA_UPLOAD_MAX_MEMORY_SIZE (here and searchsite.errors)."""
    return f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes."


class TooManyTokens(APIException):
    """A JSON body with more tokens than its endpoint can take: too large, not malformed."""

    status_code = 413
    default_code = "too_large"


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with a size limit (DATA_UPLOAD_MAX_MEMORY_SIZE) and a depth limit
    checked before json.loads runs: either is a 400 with a message, never a 500 or a busy thread."""

    def parse(self, stream: object, media_type: str | None = None, parser_context: dict | None = None) -> object:
        raw = self.read(stream)
        problem = nesting_problem(raw)
        if problem:
            raise ParseError(f"JSON parse error - {problem}.")
        return self.loads(raw, parser_context)

    def read(self, stream: object) -> bytes:
        """Return the body, refused past DATA_UPLOAD_MAX_MEMORY_SIZE without reading the rest."""
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:  # DRF reads request.body first, where Django refuses it already
            raise ParseError(too_large_message())
        return raw

    def loads(self, raw: bytes, parser_context: dict | None) -> object:
        """Return the decoded JSON value, or raise ParseError saying what is wrong with it."""
        encoding = get_encoding(parser_context or {})
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            raise ParseError(f"JSON parse error - the body is not valid {encoding} ({error.reason})") from None
        parse_constant = drf_json.strict_constant if self.strict else None
        try:
            return json.loads(text, parse_constant=parse_constant)
        except (ValueError, RecursionError) as error:
            raise ParseError(f"JSON parse error - {error}") from None


class CountedJSONParser(BoundedJSONParser):
    """BoundedJSONParser for endpoints whose input has a known bound (the rerank APIs): values and
    depth are counted on the raw bytes, stopping at the first limit passed, before anything is
    decoded or built. More tokens than `max_tokens` is a 413, answered in milliseconds."""

    max_tokens: int = 0  # set by each subclass, with the sum that gives it

    def parse(self, stream: object, media_type: str | None = None, parser_context: dict | None = None) -> object:
        raw = self.read(stream)
        problem = tokens_problem(raw, max_tokens=self.max_tokens)
        if problem and problem[0] == "depth":
            raise ParseError(f"JSON parse error - {problem[1]}.")
        if problem:
            raise TooManyTokens(f"The request is too large: {problem[1]}.")
        return self.loads(raw, parser_context)
