"""rollback-on-nack's way back: the last revision every connected proxy acknowledged.

A NACK sends serving back to this revision (reconciler/controlplane/rollback.py); without
rollback-on-nack nothing is tracked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from reconciler.store import Store

__all__ = ["AckTracker"]

log = logging.getLogger("reconciler.controlplane")


class AckTracker:
    def __init__(self, store: Store, generation_of: Callable[[str], int | None], *, enabled: bool) -> None:
        self.store = store
        self.generation_of = generation_of
        self.enabled = enabled
        self.accepted: str | None = None
        """The last revision every connected proxy ACKed."""
        self._awaiting: set[str] = set()
        """Proxies that have not ACKed the applied revision yet."""

    def check(self, node_id: str | None = None) -> None:
        """Note the applied revision as accepted once every connected proxy with a config
        ACKed it. Called without `node_id` when the revision or the set of proxies changes
        (counts who still has to ACK), with it on each ACK or new config of that proxy (so an
        ACK costs O(1), not a scan of every proxy).

        With no proxy connected, only the first revision counts as accepted: a commit nobody
        has taken yet is not a safe way back.
        """
        applied = self.store.applied
        if not self.enabled or applied is None or self.accepted == applied.revision:
            return
        if node_id is None:
            proxies = [p for p in self.store.connected() if self.generation_of(p.node_id) is not None]
            if not proxies and self.accepted is not None:
                return
            self._awaiting = {p.node_id for p in proxies if not p.synced(self.generation_of(p.node_id))}
        elif self.store.proxy(node_id).synced(self.generation_of(node_id)):
            self._awaiting.discard(node_id)
        else:
            self._awaiting.add(node_id)
            return
        if not self._awaiting:
            self.accepted = applied.revision
            log.info("every proxy accepted", extra={"revision": applied.revision[:12]})
