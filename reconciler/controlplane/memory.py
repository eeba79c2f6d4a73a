"""Give memory freed after a reconcile back to the operating system.

glibc keeps freed heap pages for reuse; after a large commit was parsed and generated that can
be hundreds of megabytes a long-running server never needs again. `malloc_trim(0)` returns them.
"""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["release_free_memory"]

_malloc_trim: Any = None


def release_free_memory() -> None:
    """Hand memory freed after a reconcile back to the OS (glibc keeps it otherwise)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)
