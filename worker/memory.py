"""Handing freed memory back to the system after a burst of work (the batching thread calls it).

CPython frees objects into its own pools and glibc's malloc keeps freed heap pages per thread
arena; a worker with many task threads that has just decoded, tokenized and scored large requests
keeps that memory mapped long after. A garbage collection and `malloc_trim(0)` return what is no
longer used, so the worker's resident size comes back near its baseline when traffic pauses.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging

logger = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> object | None:
    """Return glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def hand_back() -> bool:
    """Collect garbage and trim the C heap; return whether the heap could be trimmed."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    try:
        trim(0)
    except OSError as error:  # never let memory housekeeping stop the batching thread
        logger.debug("malloc_trim failed: %s", error)
        return False
    return True
