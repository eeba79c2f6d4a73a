"""The one timer that rebuilds the applied revision: before the first proxy certificate
expires, or again after a rebuild failed (a CA that broke while serving)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RenewalTimer"]


class RenewalTimer:
    def __init__(self, rebuild: Callable[[str], Awaitable[None]]) -> None:
        self._rebuild = rebuild
        self._handle: asyncio.TimerHandle | None = None

    def at(self, loop: asyncio.AbstractEventLoop, when: float | None, *, stopping: bool) -> None:
        """Rebuild at wall-clock `when` (None: nothing due), replacing the timer set before."""
        self.cancel()
        if when is None or stopping:
            return
        delay = max(0.05, when - time.time())
        self._handle = loop.call_later(delay, self._fire, "certificate renewal")

    def retry(self, delay: float, reason: str) -> None:
        self._handle = asyncio.get_running_loop().call_later(delay, self._fire, reason)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self, reason: str) -> None:
        asyncio.ensure_future(self._rebuild(reason))
