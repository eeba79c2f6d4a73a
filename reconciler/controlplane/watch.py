"""The serve loop's clock: reconcile when refs change on disk or every poll interval, and fetch
a remote every fetch interval, or at once when a webhook, `rollback` or `resume` asks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from reconciler.controlplane.loop import Reconciler
from reconciler.validate.bugs import describe_bug

__all__ = ["Watcher"]

log = logging.getLogger("reconciler.controlplane")


class Watcher:
    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler
        self.settings = reconciler.settings
        self.task: asyncio.Task[None] | None = None
        self.wakeup = asyncio.Event()
        self._fetch_requested = True
        self._trigger = "watch"

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.wakeup.set()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def wake(self, *, fetch: bool = False, trigger: str = "watch") -> None:
        """Check the repository now (with `fetch`, a remote too)."""
        if fetch:
            self._fetch_requested = True
        self._trigger = trigger
        self.wakeup.set()

    async def _run(self) -> None:
        r = self.reconciler
        stopping = r.stopping
        files = asyncio.create_task(r.mirror.watch(stopping, self.wakeup.set, self.settings.poll_interval))
        last_error = ""
        try:
            while not stopping.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), self.settings.poll_interval)
                self.wakeup.clear()
                if stopping.is_set():
                    break
                fetch = self._fetch_requested or time.monotonic() - r.mirror.last_fetch >= self.settings.fetch_interval
                trigger, self._trigger, self._fetch_requested = self._trigger, "watch", False
                try:
                    await r.reconcile(trigger, fetch=fetch)
                    last_error = ""
                except Exception as e:  # the loop must survive anything; a commit's bugs are its rejection already
                    error = describe_bug(e, "reconciling")
                    if error != last_error:  # the traceback once, not at every poll
                        log.exception("reconcile loop error")
                    else:
                        log.debug("reconcile loop error", extra={"error": error})
                    last_error = error
        finally:
            files.cancel()
