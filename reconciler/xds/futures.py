"""Waiting on the first of two futures without `asyncio.wait`'s cost.

An ADS stream spends its whole life waiting (for a request or a config change; the stream
guard for the stream's end or its closing): `asyncio.wait` would hold its own frames, a set
of the futures and a done callback per future for as long, on every stream (issue 16: memory
per connected proxy).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["first_done"]


async def first_done(a: asyncio.Future[Any], b: asyncio.Future[Any]) -> None:
    """Return once `a` or `b` is done (neither is cancelled or awaited for its result here)."""
    if a.done() or b.done():
        return
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake(_: asyncio.Future[Any]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    a.add_done_callback(wake)
    b.add_done_callback(wake)
    try:
        await waiter
    finally:
        a.remove_done_callback(wake)
        b.remove_done_callback(wake)
