"""Relevance judgments: who may judge, recording one (a repeat updates it), and reading them back.

The result page (evaluation.views) and the REST API (evaluation.api) both record through
`judgment_record`, so the two follow one set of rules: staff always may judge; other visitors
only while JUDGMENTS_PUBLIC is on, throttled (JudgmentThrottle), with the binary grade only. An
anonymous judge is a salted hash of its client address (never the address itself).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from common.client_address import client_ident
from common.throttling import ClientRateThrottle, is_staff
from documents.models import LIBRARY, Document
from documents.textsearch import detect_language
from evaluation.models import GRADE_MAX, GRADE_RELEVANT, RANK_MAX, Judgment, Ordering
from search.services import clean_query

# The salt of the client hash: a different purpose from every other use of SECRET_KEY, so the
# hash of an address here cannot be matched with any other value the site derives from it.
CLIENT_HASH_SALT = "evaluation.judgments.client"
# The longest query a judgment keeps (its column); SEARCH_MAX_QUERY_CHARS may be lower.
QUERY_MAX_CHARS = Judgment._meta.get_field("query").max_length


class JudgmentThrottle(ClientRateThrottle):
    """Judgments on the page and through the API (JUDGMENTS_ANON_THROTTLE, JUDGMENTS_USER_THROTTLE)."""

    anon_scope = "anon_judgment"
    user_scope = "user_judgment"


class JudgmentRefused(Exception):
    """The judgment cannot be recorded; `status` is the HTTP status that says why (400, 403, 404)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Judge:
    """Who is judging: a signed-in user, or an anonymous client by its salted hash."""

    user_id: int | None
    client_hash: str
    staff: bool

    def filter(self) -> dict:
        """Return the lookup of this judge's judgments."""
        if self.user_id is not None:
            return {"user_id": self.user_id}
        return {"user__isnull": True, "client_hash": self.client_hash}


def client_hash(request: HttpRequest) -> str:
    """Return the salted hash of the client's address (an IPv6 client's /64), never the address."""
    return salted_hmac(CLIENT_HASH_SALT, client_ident(request), algorithm="sha256").hexdigest()


def judge_of(request: HttpRequest) -> Judge:
    """Return the judge a request speaks for (a signed-in user by account, anyone else by client)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Judge(user_id=user.pk, client_hash="", staff=is_staff(request))
    return Judge(user_id=None, client_hash=client_hash(request), staff=False)


def judging_allowed(request: HttpRequest) -> bool:
    """Return whether this visitor may judge at all (staff always; others while JUDGMENTS_PUBLIC)."""
    return is_staff(request) or settings.JUDGMENTS_PUBLIC


def query_normalize(raw: str) -> str:
    """Return the query as it is judged and evaluated: NFC-normalised, then cleaned and cut as a
    search cuts it, and never longer than Judgment.query holds.

    Normalisation comes before the cut: NFC can triple a text's length ("\ufb2c" is three code
    points), so a query cut first and normalised after overflowed the column (a 500). The raw text
    is bounded by the request's size (DATA_UPLOAD_MAX_MEMORY_SIZE), and NFC runs in C.
    """
    limit = min(settings.SEARCH_MAX_QUERY_CHARS, QUERY_MAX_CHARS)
    query, _ = clean_query(unicodedata.normalize("NFC", raw))
    # A cut can leave a prefix that composes differently: normalise it again, and cut again.
    return unicodedata.normalize("NFC", query[:limit])[:limit]


def judgment_record(
    *,
    request: HttpRequest,
    query: str,
    document_id: int,
    grade: int,
    ordering: str = Ordering.UNKNOWN,
    rank: int | None = None,
) -> tuple[Judgment, bool]:
    """Return (the judgment, whether it is new): one judge's grade for one query and document,
    updating that judge's earlier one (SQL: 2-3 statements). Throttling is the caller's."""
    if not judging_allowed(request):
        raise JudgmentRefused("Judging is open to staff only on this site.", status=403)
    judge = judge_of(request)
    if not 0 <= grade <= GRADE_MAX:
        raise JudgmentRefused(f"grade must be 0 to {GRADE_MAX}.", status=400)
    if grade > GRADE_RELEVANT and not judge.staff:
        raise JudgmentRefused("Only staff grade finer than relevant / not relevant.", status=403)
    if rank is not None and not 1 <= rank <= RANK_MAX:
        raise JudgmentRefused(f"rank must be 1 to {RANK_MAX:,}.", status=400)
    normal = query_normalize(query)
    if not normal:
        raise JudgmentRefused("query is empty.", status=400)
    document = Document.objects.filter(pk=document_id, collection=LIBRARY).only("id", "content_hash").first()
    if document is None:
        raise JudgmentRefused(f"No document {document_id} in the library.", status=404)
    values = {
        "grade": grade,
        "language": detect_language(normal),
        "document_hash": document.content_hash,
        "ordering": ordering if ordering in Ordering.values else Ordering.UNKNOWN,
        "rank": rank,
        "by_staff": judge.staff,
        "user_id": judge.user_id,
        "client_hash": judge.client_hash,
    }
    lookup = {**judge.filter(), "query": normal, "document_id": document.pk}
    try:
        with transaction.atomic():
            return Judgment.objects.update_or_create(**lookup, defaults=values)
    except IntegrityError:
        # Two clicks of one judge at once: the other one inserted first; this one updates it.
        return Judgment.objects.update_or_create(**lookup, defaults=values)


def judgments_of_visitor(*, request: HttpRequest, query: str, document_ids: Iterable[int]) -> dict[int, int]:
    """Return {document id: grade} of what this visitor has judged for `query` (SQL: one query)."""
    ids = list(document_ids)
    normal = query_normalize(query)
    if not ids or not normal:
        return {}
    judge = judge_of(request)
    rows = Judgment.objects.filter(**judge.filter(), query=normal, document_id__in=ids)
    return dict(rows.values_list("document_id", "grade"))


# --- reading them back: the judged set of `evaluate --judgments` and `export_judgments` --------


@dataclass
class JudgedSet:
    """The selected judgments as a judged set: queries, qrels, and what was left out."""

    queries: list[tuple[str, str, str]]  # (query id, text, language), ordered by language, text
    qrels: dict[str, dict[str, int]]  # query id -> {document pk as text: grade}
    judgments: int = 0
    judges: int = 0
    stale: list[dict] = field(default_factory=list)  # judgments left out: the document changed
    unjudged_queries: int = 0  # queries with no relevant document (cannot be scored)


def query_id_of(query: str) -> str:
    """Return a query's stable id in exports and reports: the same text, the same id."""
    return "q-" + hashlib.sha256(query.encode("utf-8")).hexdigest()[:12]


def judgment_selection(*, include_public: bool = False) -> QuerySet[Judgment]:
    """Return the judgments of the library's documents to evaluate on: staff's, or everyone's."""
    selected = Judgment.objects.filter(document__collection=LIBRARY).select_related("document")
    return selected if include_public else selected.filter(by_staff=True)


def combined_grade(grades: list[int]) -> int:
    """Return the grade of several judges' grades: their mean, halves rounded up (1 and 0 → 1)."""
    return int(sum(grades) / len(grades) + 0.5)


def judged_set(*, include_public: bool = False, include_stale: bool = False) -> JudgedSet:
    """Return the selected judgments as queries and qrels (SQL: one query over the judgments).

    A judgment whose document changed since is stale: left out, and listed, unless `include_stale`.
    """
    grades: dict[tuple[str, int], list[int]] = {}
    languages: dict[str, str] = {}
    judges: set[tuple] = set()
    result = JudgedSet(queries=[], qrels={})
    for judgment in judgment_selection(include_public=include_public).order_by("query", "document_id", "id"):
        stale = judgment.document.content_hash != judgment.document_hash
        if stale and not include_stale:
            result.stale.append(
                {
                    "query": judgment.query,
                    "document_id": judgment.document_id,
                    "title": judgment.document.title,
                    "grade": judgment.grade,
                    "judged_at": judgment.updated_at.isoformat(),
                }
            )
            continue
        result.judgments += 1
        judges.add((judgment.user_id, judgment.client_hash))
        grades.setdefault((judgment.query, judgment.document_id), []).append(judgment.grade)
        languages.setdefault(judgment.query, judgment.language)
    for (query, document_id), given in grades.items():
        result.qrels.setdefault(query_id_of(query), {})[str(document_id)] = combined_grade(given)
    result.judges = len(judges)
    for query, language in sorted(languages.items(), key=lambda item: (item[1], item[0])):
        query_id = query_id_of(query)
        if any(grade >= GRADE_RELEVANT for grade in result.qrels[query_id].values()):
            result.queries.append((query_id, query, language))
        else:
            result.unjudged_queries += 1
            del result.qrels[query_id]
    return result


# --- agreement between judges (the admin's review) ---------------------------------------------


@dataclass
class QueryAgreement:
    query: str
    language: str
    documents: int  # documents judged for the query
    judgments: int
    judges: int
    shared: int  # documents judged by two judges or more
    agreed: int  # of those, documents all their judges put on the same side (relevant or not)
    conflicts: list[int]  # document ids the judges disagree on
    staff_only: bool

    @property
    def agreement(self) -> float | None:
        """Return the share of shared documents all judges agree on, None when none is shared."""
        return self.agreed / self.shared if self.shared else None


def query_agreements(*, judgments: Iterable[Judgment]) -> list[QueryAgreement]:
    """Return each query's agreement between judges (relevant or not), queries in text order."""
    by_query: dict[str, dict[int, list[Judgment]]] = {}
    for judgment in judgments:
        by_query.setdefault(judgment.query, {}).setdefault(judgment.document_id, []).append(judgment)
    rows = []
    for query, documents in sorted(by_query.items()):
        all_judgments = [j for group in documents.values() for j in group]
        shared = {doc: group for doc, group in documents.items() if len(group) > 1}
        conflicts = sorted(doc for doc, group in shared.items() if len({j.grade >= GRADE_RELEVANT for j in group}) > 1)
        rows.append(
            QueryAgreement(
                query=query,
                language=all_judgments[0].language,
                documents=len(documents),
                judgments=len(all_judgments),
                judges=len({(j.user_id, j.client_hash) for j in all_judgments}),
                shared=len(shared),
                agreed=len(shared) - len(conflicts),
                conflicts=conflicts,
                staff_only=all(j.by_staff for j in all_judgments),
            )
        )
    return rows
