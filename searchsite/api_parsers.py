"""The REST API's JSON parser: size and nesting bounded before json.loads (searchsite.json_limits)."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json as drf_json

from searchsite.errors import too_large_message
from searchsite.json_limits import nesting_problem


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with a size limit (DATA_UPLOAD_MAX_MEMORY_SIZE) and a depth limit
    checked before json.loads runs: either is a 400 with a message, never a 500 or a busy thread."""

    def parse(self, stream: object, media_type: str | None = None, parser_context: dict | None = None) -> object:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:  # DRF reads request.body first, where Django refuses it already
            raise ParseError(too_large_message())
        encoding = get_encoding(parser_context or {})
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            raise ParseError(f"JSON parse error - the body is not valid {encoding} ({error.reason})") from None
        problem = nesting_problem(text)
        if problem:
            raise ParseError(f"JSON parse error - {problem}.")
        parse_constant = drf_json.strict_constant if self.strict else None
        try:
            return json.loads(text, parse_constant=parse_constant)
        except (ValueError, RecursionError) as error:
            raise ParseError(f"JSON parse error - {error}") from None
