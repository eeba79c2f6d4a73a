"""Sharing dataplanes registered at connect with the other replicas (reconciler/source/registry.py).

This replica writes its registrations to its own ref when they change (batched for
`BATCH` seconds) and every `heartbeat` while it has any, and reads the other replicas' refs
every poll: a change among them rebuilds the applied commit, so a consumer served here gets the
endpoints of a proxy connected to another replica. Git errors are logged and retried at the
next round; they never touch serving. Refs of replicas dead for `FORGET_AFTER` TTLs are
deleted, so replicas that get a new id at every restart leave nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Collection
from pathlib import Path

from reconciler.ca.statefiles import create_private_once, read_private
from reconciler.controlplane.loop import Reconciler
from reconciler.model import Resource
from reconciler.source import registry
from reconciler.source.git import GitError
from reconciler.xds.registration import dataplane_from_text
from reconciler.xds.server import XdsRejected

__all__ = ["RegistrationSync", "replica_id", "BATCH"]

log = logging.getLogger("reconciler.controlplane")

BATCH = 0.2
"""Seconds a registration waits for others before this replica's ref is written."""
ID_FILE = "replica-id"
FORGET_AFTER = 10
"""TTLs after its last heartbeat when a dead replica's ref is deleted (ignored after one)."""


def replica_id(state_dir: str) -> str:
    """This replica's name among the others: made once, kept in `<state>/replica-id`."""
    path = Path(state_dir) / ID_FILE
    create_private_once(path, secrets.token_hex(6).encode())
    return read_private(path).decode().strip()


class RegistrationSync:
    def __init__(self, reconciler: Reconciler, replica: str, *, heartbeat: float, poll: float) -> None:
        self.reconciler = reconciler
        self.replica = replica
        self.heartbeat = heartbeat
        self.ttl = 3 * heartbeat
        self.poll = poll
        self.local: dict[str, str] = {}
        """node id → the Dataplane text its proxy sent, for the proxies connected here."""
        self._dirty = asyncio.Event()
        self._dirty.set()  # a restarted replica clears what its previous life left in its ref
        self._published = 0.0
        self._polled = 0.0
        self._forgot = 0.0
        self._parsed: dict[tuple[str, str, bool], Resource | None] = {}
        self._task: asyncio.Task[None] | None = None

    def register(self, node_id: str, text: str | None) -> None:
        """A proxy connected here registered (`text`) or left (None)."""
        if text is None:
            self.local.pop(node_id, None)
        else:
            self.local[node_id] = text
        self._dirty.set()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        r = self.reconciler
        while not r.stopping.is_set():
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=min(self.poll, self.heartbeat))
                await asyncio.sleep(BATCH)
            except TimeoutError:
                pass
            now = time.monotonic()
            if self._dirty.is_set() or (self.local and now - self._published >= self.heartbeat):
                self._dirty.clear()
                if not await self._git("publishing registrations", registry.publish, r.mirror, self.replica, dict(self.local)):
                    self._dirty.set()  # tried again next round
                self._published = now
            if now - self._polled >= self.poll:
                self._polled = now
                await self._read_peers()

    async def _git(self, what: str, call: Callable[..., object], *args: object) -> bool:
        r = self.reconciler
        try:
            async with r.lock:  # the repository is used by one thread at a time
                await asyncio.to_thread(call, *args)
        except (GitError, OSError, KeyError, ValueError) as e:
            log.warning(f"{what} failed", extra={"error": r.mirror.redact(str(e))})
            return False
        return True

    async def _read_peers(self) -> None:
        r = self.reconciler
        if not await self._git("fetching registrations", registry.fetch_peers, r.mirror):
            return
        async with r.lock:
            peers = await asyncio.to_thread(registry.read_peers, r.mirror, self.replica, self.ttl)
        if time.monotonic() - self._forgot >= self.heartbeat:  # housekeeping: once a heartbeat is plenty
            self._forgot = time.monotonic()
            await self._git("deleting the refs of dead replicas", registry.forget_dead, r.mirror, self.replica, FORGET_AFTER * self.ttl)
        meshes = r.store.applied.model.meshes if r.store.applied else None
        found: dict[str, Resource] = {}
        for peer in sorted(peers, key=lambda p: p.heartbeat):  # the freshest wins a node both claim
            for node_id, text in peer.dataplanes.items():
                resource = self._parse(node_id, text, meshes)
                if resource is not None:
                    found[node_id] = resource
        if found != r.store.peer_registered:
            r.store.peer_registered = found
            await r.rebuild(f"registrations of other replicas changed ({len(found)} dataplanes)")

    def _parse(self, node_id: str, text: str, meshes: Collection[str] | None) -> Resource | None:
        key = (node_id, text, meshes is None or node_id.partition(".")[0] in meshes)
        if key not in self._parsed:
            if len(self._parsed) > 4 * (len(self.local) + len(self.reconciler.store.peer_registered)) + 1000:
                self._parsed.clear()  # bounded: entries of proxies long gone
            try:
                self._parsed[key] = dataplane_from_text(node_id, text, meshes)
            except XdsRejected as e:
                log.warning("a registration of another replica is invalid", extra={"node": node_id, "error": e.message})
                self._parsed[key] = None
        return self._parsed[key]
