"""JSON nesting checked on the raw text, before anything recursive runs.

Python's json module, DRF's serializers, metadata cleaning and PostgreSQL's jsonb all recurse once
per level: 100,000 nested `[` answered 500 (RecursionError), and metadata 900 levels deep kept a
web thread busy for minutes. The check below only uses str/bytes operations that run in C (no
Python loop per character), so it costs milliseconds even on the largest body we accept.
"""

from __future__ import annotations

import re

# Levels of arrays and objects one JSON text may nest. Our own payloads nest 2 or 3 deep (a list
# of records, a record, its metadata); 64 leaves room for any real metadata.
MAX_JSON_DEPTH = 64
# Bytes that neither delimit strings nor nest: dropped before strings are looked for (cheaper).
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'[]{}"')
# A string, once escaped backslashes and escaped quotes are gone: nothing inside can be a quote.
_STRING = re.compile(rb'"[^"]*"')
# Objects and arrays nest alike.
_SQUARE = bytes.maketrans(b"{}", b"[]")


def nesting_problem(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Return why `text` nests too deeply for us (None if it does not), without parsing it.

    Strings are removed first (so brackets inside them do not count), then all but the brackets.
    Removing every innermost `[]` pair lowers the depth of balanced brackets by exactly one, so
    brackets left after `max_depth` such passes nest deeper than that. Brackets that do not
    balance are left to the JSON reader, whose message says where (callers catch its
    RecursionError too).
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    # Escaped backslashes first, then escaped quotes: what remains of each run of backslashes
    # before a quote tells whether that quote is escaped, as a JSON reader sees it.
    data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _STRING.sub(b"", data.translate(None, delete=_NOT_STRUCTURE)).translate(_SQUARE)
    too_deep = f"the JSON nests deeper than {max_depth} levels of arrays and objects"
    if b"[" * (max_depth + 1) in brackets:
        return too_deep
    for _ in range(max_depth):
        if not brackets:
            return None
        reduced = brackets.replace(b"[]", b"")
        if len(reduced) == len(brackets):
            # Brackets that do not balance: not JSON at all. The JSON reader says where, and
            # fails without building anything (past Python's limit, with a RecursionError).
            return None
        brackets = reduced
    return too_deep if brackets else None


# One JSON token that counts, once escaped backslashes and quotes are gone: a whole string
# (skipped in C; possessive, so a string that never ends costs one pass), a bracket, a comma, or
# a quote that opens no string (then the text is not JSON, and the JSON reader says why).
_TOKEN = re.compile(rb'"[^"]*+"|[\[\]{},"]')
# Bytes that neither delimit strings, nor nest, nor separate values: dropped first (in C).
_NOT_TOKEN = bytes(byte for byte in range(256) if byte not in b'[]{}",')


def tokens_problem(data: bytes, *, max_tokens: int, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """Return ("tokens" or "depth", why) when `data` holds more than `max_tokens` tokens or nests
    deeper than `max_depth` (None if neither), reading it only until a limit is passed.

    Tokens are strings, commas and opening brackets (numbers and literals sit between commas, so
    they are bounded too). Strings are skipped by a regular expression in C, so the Python loop
    runs at most `max_tokens` times however large the body: a refusal costs milliseconds and no
    memory that grows with what was sent. Unbalanced brackets and an unterminated string are left
    to the JSON reader, whose message says where.
    """
    if b"\\" in data:  # as in nesting_problem: then no quote inside a string is left
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    data = data.translate(None, delete=_NOT_TOKEN)
    tokens = depth = 0
    for match in _TOKEN.finditer(data):
        token = data[match.start()]
        if token == 0x22 and match.end() - match.start() == 1:  # a quote that opens no string
            return None
        if token in (0x5D, 0x7D):  # ']' '}'
            depth -= 1
            continue
        if token in (0x5B, 0x7B):  # '[' '{'
            depth += 1
            if depth > max_depth:
                return "depth", f"the JSON nests deeper than {max_depth} levels of arrays and objects"
        tokens += 1
        if tokens > max_tokens:
            return "tokens", f"the JSON holds more than {max_tokens:,} strings, commas and brackets"
    return None
