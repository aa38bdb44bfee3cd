"""What runs after documents are written: the hooks that search engines and vector indexes subscribe.

`documents.services` announces every create, update, re-index and delete here, once the
transaction that wrote them commits (a rolled-back write announces nothing). Each hook named in
`DOCUMENTS_INDEX_HOOKS` is called with the ids that changed and the ids that were deleted. This
module imports no search or worker code: the hooks are named by settings, like Django's backends.

A hook must not fail a write that is already committed: an exception is logged, never raised.
`reindex_documents` also calls each hook named in `DOCUMENTS_REBUILD_HOOKS` once, to rebuild
what it derives from a whole collection (statistics, vectors) from scratch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import cache

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

Hook = Callable[..., None]


@cache
def _load(path: str) -> Hook:
    return import_string(path)


def hooks() -> list[Hook]:
    """Return the configured hooks (imported once per process)."""
    return [_load(path) for path in settings.DOCUMENTS_INDEX_HOOKS]


def rebuild(*, collection: str | None = None) -> list[str]:
    """Run every rebuild hook for one collection (or all) now; return what each reported."""
    return [str(_load(path)(collection=collection)) for path in settings.DOCUMENTS_REBUILD_HOOKS]


def announce(*, changed: Iterable[int] = (), deleted: Iterable[int] = (), collection: str | None = None) -> None:
    """Call every hook with these ids when the current transaction commits (at once outside one)."""
    changed_ids, deleted_ids = sorted(set(changed)), sorted(set(deleted))
    if not changed_ids and not deleted_ids:
        return
    transaction.on_commit(lambda: _run(changed_ids, deleted_ids, collection))


def _run(changed: list[int], deleted: list[int], collection: str | None) -> None:
    for hook in hooks():
        try:
            hook(changed=changed, deleted=deleted, collection=collection)
        except Exception:  # a hook's failure must not fail a committed write
            logger.exception("index hook %s failed for %d changed, %d deleted", hook, len(changed), len(deleted))
