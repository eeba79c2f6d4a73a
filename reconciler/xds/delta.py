"""Delta (incremental) xDS on one ADS stream (envoyproxy.io "xDS REST and gRPC protocol").

- subscribe/unsubscribe are applied from every request, even with a stale nonce;
- wildcard by an empty first subscription (LDS/CDS) or "*";
- `removed_resources` for resources that disappear or that a client asked for and do not exist;
- `initial_resource_versions` avoids re-sending what a reconnecting client has;
- a NACKed response's versions are not sent again; updates go out in the order CDS, EDS,
  LDS, RDS, SDS, and the dependents of a changed cluster or listener are sent again (of EDS,
  the assignments of the clusters that changed: Envoy keeps an unchanged cluster warm).
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from reconciler.xds.cache import NodeConfig
from reconciler.xds.protocol import DEPENDENTS, WILDCARD_TYPES, StreamHost, known_type
from reconciler.xds.resources import CLUSTER, ENDPOINT, SHORT_NAMES, TYPE_ORDER, XdsResource
from reconciler.xds.warming import eds_names

__all__ = ["DeltaStream"]

# Logged under the server's name, as before the split, so log settings that name it still apply.
log = logging.getLogger("reconciler.xds.server")


_NONE: Mapping[str, str] = MappingProxyType({})


@dataclass(slots=True)
class _DeltaType:
    """One type's state on a stream. What is usually empty is an empty value shared by every
    stream (a set or dict of its own each costs 64–216 bytes per type, per proxy), replaced
    whole when it changes."""

    wildcard: bool = False
    names: frozenset[str] = frozenset()
    """Interned: every stream that names a resource holds one string for it."""
    known: dict[str, str] = field(default_factory=dict)
    """What the client has: name → version (from initial_resource_versions and our sends)."""
    nonce: str = ""
    sent_revision: str = ""
    pending: tuple[XdsResource, ...] = ()
    """What the last response sent (the cache's resources, shared): not sent again if NACKed."""
    nacked: Mapping[str, str] = field(default_factory=lambda: _NONE)
    """Versions of the last rejected response: not sent again."""
    absent: frozenset[str] = frozenset()
    """Subscribed names we already told the client do not exist."""


class DeltaStream:
    __slots__ = ("server", "node_id", "context", "types", "nonces", "config")

    def __init__(self, server: StreamHost, node_id: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.server = server
        self.node_id = node_id
        self.context = context
        self.types: dict[str, _DeltaType] = {}
        self.nonces = itertools.count(1)
        self.config: NodeConfig | None = server.watcher.fetch(node_id)

    def _wanted(self, type_url: str, state: _DeltaType) -> dict[str, XdsResource]:
        if self.config is None:
            return {}
        table = self.config.resources.of(type_url)
        out = {n: r for n, r in table.items() if n in state.names}
        if state.wildcard:
            out.update({n: r for n, r in table.items() if not r.by_name_only})
        return out

    async def push(self, type_url: str, *, force: bool = False) -> None:
        state = self.types[type_url]
        if self.config is None:
            return
        wanted = self._wanted(type_url, state)
        changed = [r for n, r in sorted(wanted.items()) if state.known.get(n) != r.version and state.nacked.get(n) != r.version]
        # Removed: what the client has but we no longer serve; and names it asked for that
        # do not exist, so it does not wait for them.
        removed = sorted(n for n in state.known if n not in wanted)
        missing = sorted(n for n in state.names if n not in wanted and n not in state.known and n not in state.absent)
        if state.absent or missing:
            state.absent = frozenset(n for n in state.absent if n in state.names and n not in wanted).union(missing)
        if not changed and not removed and not missing and not force:
            return
        nonce = str(next(self.nonces))
        response = discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=self.config.revision,
            type_url=type_url,
            nonce=nonce,
            resources=[discovery_pb2.Resource(name=r.name, version=r.version, resource=r.as_any()) for r in changed],
            removed_resources=removed + missing,
            control_plane=self.server.control_plane,
        )
        state.nonce = nonce
        state.sent_revision = self.config.revision
        state.pending = tuple(changed)
        for r in changed:
            state.known[r.name] = r.version
        for n in removed:
            state.known.pop(n, None)
        await self.context.write(response)
        self.server.callbacks.on_sent(self.node_id, type_url, nonce, state.sent_revision)

    async def on_request(self, req: discovery_pb2.DeltaDiscoveryRequest) -> None:
        type_url = known_type(req.type_url)
        state = self.types.get(type_url)
        first = state is None
        if state is None:
            state = self.types[type_url] = _DeltaType()
            state.known = dict(req.initial_resource_versions)
            if type_url in WILDCARD_TYPES and not req.resource_names_subscribe:
                state.wildcard = True
        # Subscription changes count whatever the nonce says.
        subscribe = {sys.intern(name) for name in req.resource_names_subscribe if name != "*"}
        if "*" in req.resource_names_subscribe:
            state.wildcard = True
        if subscribe:
            state.names = state.names | subscribe
        unsubscribe = {name for name in req.resource_names_unsubscribe if name != "*"}
        if "*" in req.resource_names_unsubscribe:
            state.wildcard = False
        if unsubscribe:
            state.names = state.names - unsubscribe
            for name in unsubscribe:
                state.known.pop(name, None)
        if req.resource_names_unsubscribe and not state.wildcard and not state.names and state.nonce and req.response_nonce != state.nonce:
            # Envoy dropped every resource of this type and ignores the response in flight (a type
            # it does not watch): nothing is awaited any more (as in sotw.py).
            self.server.callbacks.on_ack(self.node_id, type_url, state.nonce, state.sent_revision)
        if req.response_nonce and req.response_nonce == state.nonce:
            if req.HasField("error_detail"):
                state.nacked = {r.name: r.version for r in state.pending}
                for r in state.pending:
                    state.known.pop(r.name, None)
                self.server.callbacks.on_nack(self.node_id, type_url, req.response_nonce, state.sent_revision, req.error_detail.message)
                log.warning(
                    "config rejected by proxy",
                    extra={"node": self.node_id, "type": SHORT_NAMES.get(type_url, type_url), "error": req.error_detail.message},
                )
            else:
                state.nacked = _NONE
                self.server.callbacks.on_ack(self.node_id, type_url, req.response_nonce, state.sent_revision)
        # A reconnecting client that names what it has gets only what differs; when nothing
        # does, nothing is sent (it was served this content before, here or by another replica).
        nonce = state.nonce
        await self.push(type_url, force=first and not req.initial_resource_versions)
        if first and state.nonce == nonce and self.config is not None:
            self.server.callbacks.on_resumed(self.node_id, type_url, "", self.config.revision)

    async def on_config(self, config: NodeConfig | None) -> None:
        self.config = config
        if config is None:
            return
        rewarm: set[str] = set()
        rebuilt: set[str] = set()
        for type_url in TYPE_ORDER:
            state = self.types.get(type_url)
            if state is None:
                continue
            if type_url == ENDPOINT and type_url in rewarm:
                # A cluster the CDS update changed is rebuilt and warms until it has its endpoints
                # again; an unchanged one is kept as it is and needs nothing.
                for name in rebuilt:
                    state.known.pop(name, None)
            elif type_url in rewarm:
                state.known.clear()  # resend what warming clusters and listeners need
            nonce = state.nonce
            await self.push(type_url)
            if state.nonce != nonce:
                rewarm.update(DEPENDENTS.get(type_url, ()))
                if type_url == CLUSTER:
                    rebuilt = eds_names(state.pending)
