"""The ADS server's callbacks: what the control plane does when a proxy connects, is sent a
config, ACKs or NACKs it, and disconnects.

A proxy is admitted by its dataplane token (`Admission`); one that brings its own Dataplane
(not declared in git) registers it, which rebuilds the applied revision. ACKs feed
rollback-on-nack's notion of an accepted revision; a NACK may roll back (rollback.py).

A proxy push is what one config change (or a new stream) sends a proxy: it starts with the
first response and ends when no response of it awaits an answer. Its time from the first
response to the last ACK goes to `reconciler_xds_push_ack_seconds`; a push with a NACK is
counted as NACKs, not timed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from envoy.config.core.v3 import base_pb2

from reconciler.api.metrics import type_label
from reconciler.controlplane import rollback
from reconciler.controlplane.grpc_setup import Admission
from reconciler.controlplane.loop import Reconciler
from reconciler.controlplane.registrations import RegistrationSync
from reconciler.xds.admission import split_node_id
from reconciler.xds.cache import NodeConfig
from reconciler.xds.registration import DATAPLANE_METADATA_KEY, dataplane_from_text, metadata_text
from reconciler.xds.security import current_call

__all__ = ["ProxyEvents"]


@dataclass(slots=True)
class _Push:
    started: float
    awaiting: set[str] = field(default_factory=set)
    """Type URLs sent and not answered yet."""
    nacked: bool = False


class ProxyEvents:
    """Implements reconciler.xds.server.StreamCallbacks for the control plane."""

    def __init__(self, reconciler: Reconciler, admission: Admission) -> None:
        self.reconciler = reconciler
        self.store = reconciler.store
        self.metrics = reconciler.metrics
        self.admission = admission
        self._streams: dict[str, int] = {}
        """Open streams per node id (a proxy may hold a SotW and a delta stream)."""
        self._pushes: dict[str, _Push] = {}
        """Each proxy's push in flight."""
        self.shared: RegistrationSync | None = None
        """Where registrations are shared with the other replicas (controlplane/registrations.py)."""

    async def on_open(self, node: base_pb2.Node, mode: str) -> str:
        node_id = str(node.id)
        mesh, name = split_node_id(node_id)
        call = current_call()
        auth = self.admission.authenticator()
        claims = None
        applied = self.store.applied
        if auth is not None:
            auth.use(applied.snapshot if applied else None)
            claims = auth.authenticate(node, call, mesh, name)
            auth.authorize(claims, mesh, name, check_tags=False)
        raw = node.metadata.fields.get(DATAPLANE_METADATA_KEY) if node.HasField("metadata") else None
        text = metadata_text(raw) if raw is not None else None
        resource = (
            await asyncio.to_thread(dataplane_from_text, node_id, text, self.store.applied.model.meshes if self.store.applied else None)
            if text is not None
            else None
        )
        if auth is not None and claims is not None:
            auth.authorize(claims, mesh, name, resource)
        if call is not None:
            call.node_id, call.claims = node_id, claims
        if resource is not None and text is not None:
            previous = self.store.registered.get(node_id)
            self.store.registered[node_id] = resource
            if self.shared is not None:
                self.shared.register(node_id, text)
            if previous != resource:
                await self.reconciler.rebuild(f"registered {node_id}")
        self._streams[node_id] = self._streams.get(node_id, 0) + 1
        status = self.store.proxy(node_id)
        status.connected, status.mode, status.connected_at = True, mode, time.time()
        status.streams = self._streams[node_id]
        return node_id

    def on_close(self, node_id: str, mode: str) -> None:
        asyncio.ensure_future(self.release(node_id))

    async def release(self, node_id: str) -> None:
        count = self._streams.get(node_id, 1) - 1
        if count > 0:
            self._streams[node_id] = count
            self.store.proxy(node_id).streams = count
            return
        self._streams.pop(node_id, None)
        self._pushes.pop(node_id, None)
        status = self.store.proxy(node_id)
        status.connected, status.streams, status.disconnected_at = False, 0, time.time()
        self.reconciler.acks.check()
        if self.store.registered.pop(node_id, None) is not None:
            if self.shared is not None:
                self.shared.register(node_id, None)
            await self.reconciler.rebuild(f"unregistered {node_id}")

    def on_sent(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        t = self.store.proxy(node_id).type(type_url)
        t.sent_version, t.sent_revision = version, revision
        t.pushes += 1
        self.metrics.xds_pushes.labels(type=type_label(type_url)).inc()
        push = self._pushes.get(node_id)
        if push is None:
            push = self._pushes[node_id] = _Push(time.perf_counter())
        push.awaiting.add(type_url)

    def on_ack(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        t = self.store.proxy(node_id).type(type_url)
        t.acked_version, t.acked_revision = version, revision
        self.metrics.xds_acks.labels(type=type_label(type_url)).inc()
        self._answered(node_id, type_url, nacked=False)
        self.reconciler.acks.check(node_id)

    def on_resumed(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        t = self.store.proxy(node_id).type(type_url)
        t.sent_version = t.acked_version = version
        t.sent_revision = t.acked_revision = revision
        t.resumed += 1
        self.metrics.xds_resumed.labels(type=type_label(type_url)).inc()
        self.reconciler.acks.check(node_id)

    def on_stream_end(self, mode: str, code: str) -> None:
        self.metrics.xds_stream_ends.labels(mode=mode, code=code).inc()

    def on_config(self, node_id: str, config: NodeConfig) -> None:
        status = self.store.proxy(node_id)
        status.revision, status.generation = config.revision, config.generation
        self.reconciler.acks.check(node_id)

    def on_nack(self, node_id: str, type_url: str, version: str, revision: str, message: str) -> None:
        t = self.store.proxy(node_id).type(type_url)
        t.nacked_revision, t.nack_message = revision, message
        t.nacks += 1
        self.metrics.xds_nacks.labels(type=type_label(type_url)).inc()
        self._answered(node_id, type_url, nacked=True)
        rollback.on_nack(self.reconciler, revision)

    def _answered(self, node_id: str, type_url: str, *, nacked: bool) -> None:
        push = self._pushes.get(node_id)
        if push is None:
            return
        push.awaiting.discard(type_url)
        push.nacked = push.nacked or nacked
        if push.awaiting:
            return
        del self._pushes[node_id]
        if not push.nacked:
            self.metrics.push_ack_latency.observe(time.perf_counter() - push.started)
