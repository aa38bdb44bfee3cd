"""Web-search syntax, parsed once and engine-neutral: scored words, required phrases, exclusions, OR.

What a query means (the backends implement exactly this):
- Plain words are a disjunction ranked by BM25: a document with more of them, and rarer ones,
  ranks higher; none of them is required.
- `"a phrase"` requires the phrase (its words are also scored); `"word"` requires the word.
- `-word` and `-"a phrase"` exclude documents that contain them.
- `A OR B` makes one group of alternatives: a group that holds a phrase is required, and any one
  of its members satisfies it (a plain word member by being present). `|` works like `OR`.
- Hyphenated words (`heat-transfer`) are ordinary words; the index splits them into their parts.
- When no document satisfies the required phrases, the search relaxes them to their words (the
  exclusions still hold) and says so, as web search engines do: a quoted sentence pasted from
  elsewhere still finds the documents that share its words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A token: an optionally negated quoted phrase (the closing quote may be missing), or any other
# run of non-space characters.
TOKEN = re.compile(r'-?"[^"]*"?|\S+')
OR_OPERATORS = {"OR", "|"}


@dataclass(frozen=True)
class Clause:
    """One member of a query: a word (or a run without spaces) or a quoted phrase."""

    text: str
    phrase: bool = False


@dataclass
class ParsedQuery:
    text: str
    scored: list[Clause] = field(default_factory=list)  # every positive clause, in query order
    required: list[list[Clause]] = field(default_factory=list)  # groups: one member must match each
    excluded: list[Clause] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.scored)


def parse(query: str) -> ParsedQuery:
    """Return the clauses of a web-search style query (CPU only, no I/O)."""
    parsed = ParsedQuery(text=query)
    groups: list[list[Clause]] = []
    join_next = False  # the previous token was OR and the previous clause was positive
    for token in TOKEN.findall(query):
        if token in OR_OPERATORS:
            join_next = bool(groups)
            continue
        negated = token.startswith("-") and len(token) > 1
        body = token[1:] if negated else token
        clause = _clause(body)
        if clause is None:
            join_next = False
            continue
        if negated:
            parsed.excluded.append(clause)
            join_next = False
            continue
        parsed.scored.append(clause)
        if join_next:
            groups[-1].append(clause)
        else:
            groups.append([clause])
        join_next = False
    parsed.required = [group for group in groups if any(member.phrase for member in group)]
    return parsed


def _clause(body: str) -> Clause | None:
    """Return the clause a token stands for, or None for a token with nothing in it."""
    if body.startswith('"'):
        text = " ".join(body.strip('"').split())
        if not text:
            return None
        return Clause(text=text, phrase=True)
    text = body.strip()
    if not text or text == "-":
        return None
    return Clause(text=text)


def relaxed(query: ParsedQuery) -> ParsedQuery:
    """Return `query` without its required groups: every positive clause scored, exclusions kept."""
    return ParsedQuery(text=query.text, scored=list(query.scored), required=[], excluded=list(query.excluded))


def relaxed_notice(query: ParsedQuery) -> str:
    phrases = [member.text for group in query.required for member in group if member.phrase]
    quoted = ", ".join(f"“{text}”" for text in phrases[:3])
    return f"No document has the exact phrase {quoted}; showing documents with its words instead."
