"""State-of-the-world xDS on one ADS stream (envoyproxy.io "xDS REST and gRPC protocol").

- per type: nonce, last version sent, subscription, ACKed version;
- a request whose nonce is not the latest sent for its type is stale and ignored;
- a NACK (error_detail) is recorded and the rejected content is never re-sent, only newer
  content; an ACK with a changed subscription is always answered, even when nothing changed
  (Envoy re-requests EDS after a cluster change and stalls 15 s if unanswered); LDS and CDS
  are full state; an initial request is answered, unless it already names the version we would
  send (a reconnect to a replica serving the same commit: nothing is pushed);
- updates go out in the order CDS, EDS, LDS, RDS, SDS, and clusters that disappear are
  removed only after the listeners and routes that used them (make before break);
- an EDS response to a proxy that ACKed the last one carries only the ClusterLoadAssignments it
  lacks: those that changed, those it newly asks for, and those of clusters a CDS update changed
  (Envoy rebuilds such a cluster, which warms until it has its endpoints again; an unchanged
  cluster is kept as it is). The xDS protocol groups every SotW type but LDS and CDS as delta
  does ("Grouping Resources into Responses"), and Envoy keeps the assignments a response leaves
  out. The response's version is still that of the whole subscribed set, so ACKs, resumes and
  NACKs mean what they did. A consumer of a service that gained one endpoint gets that service's
  assignment, not the hundreds of endpoints of every service it calls; a proxy given a new
  cluster gets that cluster's. First answers, answers to a NACK and pushes to a proxy with an
  EDS response in flight still carry the whole set;
- when a CDS update adds EDS clusters, what follows EDS (LDS, RDS, SDS, the removal of stale
  clusters) is held until Envoy's EDS request naming the new clusters is answered, or until it
  ACKs or NACKs that CDS update. Envoy reads the stream in order on its main thread: an LDS
  response sent right behind the CDS update would be applied before the new clusters' endpoints
  (at 10,000 listeners that takes Envoy 10-25 s, and the new clusters wait for it, past their
  15 s initial fetch timeout).
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from reconciler.xds.cache import NodeConfig
from reconciler.xds.protocol import DEPENDENTS, WILDCARD_TYPES, StreamHost, known_type
from reconciler.xds.protocol import select as _select
from reconciler.xds.protocol import set_version as _set_version
from reconciler.xds.resources import CLUSTER, ENDPOINT, SHORT_NAMES, TYPE_ORDER, XdsResource
from reconciler.xds.warming import eds_names

__all__ = ["SotwStream"]

_HELD = (CLUSTER, ENDPOINT)

# Logged under the server's name, as before the split, so log settings that name it still apply.
log = logging.getLogger("reconciler.xds.server")


@dataclass(slots=True)
class _SotwType:
    names: tuple[str, ...] | None = None
    """The names subscribed to, sorted and interned (a tuple costs a fifth of a set); None is
    a wildcard subscription."""
    nonce: str = ""
    sent_version: str = ""
    held: tuple[XdsResource, ...] = ()
    """CDS and EDS only: the resources last sent (the cache's, shared by every stream). CDS:
    to remove stale clusters after what uses them; EDS: to send only the assignments that
    changed."""
    sent_revision: str = ""
    acked_version: str = ""
    nacked_version: str = ""


class SotwStream:
    __slots__ = ("server", "node_id", "context", "types", "nonces", "config", "rewarm", "rebuilt", "awaited_eds", "final_cds")

    def __init__(self, server: StreamHost, node_id: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.server = server
        self.node_id = node_id
        self.context = context
        self.types: dict[str, _SotwType] = {}
        self.nonces = itertools.count(1)
        self.config: NodeConfig | None = server.watcher.fetch(node_id)
        self.rewarm: set[str] = set()
        self.rebuilt: set[str] = set()
        """EDS names of the clusters changed or added by CDS updates since the last EDS response:
        Envoy rebuilds those clusters, and each warms until it gets its endpoints again."""
        self.awaited_eds: set[str] = set()
        """EDS names of clusters just sent that Envoy has not asked for yet: while there are any,
        the types after EDS are held back (see the module docstring)."""
        self.final_cds: list[XdsResource] | None = None
        """The CDS update without the stale clusters, sent once the listeners and routes are."""

    async def send(
        self, type_url: str, resources: list[XdsResource], *, record: bool = True, changed: list[XdsResource] | None = None
    ) -> None:
        """Send `resources` as the type's state; with `changed`, only those go on the wire (the
        proxy keeps the rest: see the module's notes)."""
        state = self.types[type_url]
        self.rewarm.update(DEPENDENTS.get(type_url, ()))
        self.rewarm.discard(type_url)
        version = _set_version(resources)
        nonce = str(next(self.nonces))
        response = discovery_pb2.DiscoveryResponse(
            version_info=version,
            type_url=type_url,
            nonce=nonce,
            resources=[r.as_any() for r in (resources if changed is None else changed)],
            control_plane=self.server.control_plane,
        )
        if type_url == CLUSTER:
            # After a CDS NACK what Envoy built is not known: every cluster counts as rebuilt. (The
            # clusters of an update still in flight were counted when it was sent.)
            rebuilt = resources if state.nacked_version == state.sent_version else _changed(resources, state.held)
            self.rebuilt |= eds_names(rebuilt)
        elif type_url == ENDPOINT:
            self.rebuilt.clear()
        state.nonce = nonce
        state.sent_version = version
        state.held = tuple(resources) if type_url in _HELD else ()
        state.sent_revision = self.config.revision if self.config else ""
        await self.context.write(response)
        if record:
            self.server.callbacks.on_sent(self.node_id, type_url, version, state.sent_revision)
        log.debug(
            "sent", extra={"node": self.node_id, "type": SHORT_NAMES.get(type_url, type_url), "version": version, "count": len(resources)}
        )

    def _resume(self, type_url: str, resources: list[XdsResource], version: str) -> None:
        """A new stream's first request already holds what we would send (the proxy was served
        this content before it reconnected, here or by another replica with the same commit):
        as go-control-plane does, nothing is sent, so a reconnect changes nothing in Envoy."""
        state = self.types[type_url]
        state.sent_version = state.acked_version = version
        state.held = tuple(resources) if type_url in _HELD else ()
        state.sent_revision = self.config.revision if self.config else ""
        self.server.callbacks.on_resumed(self.node_id, type_url, state.sent_version, state.sent_revision)
        log.debug("resumed", extra={"node": self.node_id, "type": SHORT_NAMES.get(type_url, type_url), "version": state.sent_version})

    async def on_request(self, req: discovery_pb2.DiscoveryRequest) -> None:
        await self._answer(req)
        eds = self.types.get(ENDPOINT)
        if (
            req.type_url == ENDPOINT
            and self.awaited_eds
            and eds is not None
            and (eds.names is None or self.awaited_eds.issubset(eds.names))
        ):
            await self._release()  # the new clusters' endpoints are on their way: what follows may go

    async def _answer(self, req: discovery_pb2.DiscoveryRequest) -> None:
        type_url = known_type(req.type_url)
        state = self.types.get(type_url)
        log.debug(
            "request",
            extra={
                "node": self.node_id,
                "type": SHORT_NAMES.get(type_url, type_url),
                "nonce": req.response_nonce,
                "version": req.version_info,
                "names": len(req.resource_names),
                "nack": req.HasField("error_detail"),
            },
        )
        names = _subscription(req.resource_names)
        if names is None and type_url not in WILDCARD_TYPES:
            names = ()  # an empty subscription to a non-wildcard type asks for nothing
        if state is not None and req.response_nonce and names == ():
            # Envoy dropped every resource of this type (mTLS turned off: no secret is referenced).
            # It ignores responses for a type it no longer watches, even one in flight (the stale
            # nonce shows it has not read it): nothing sent is awaited any more.
            state.names = names
            if state.acked_version != state.sent_version:
                state.acked_version = state.sent_version
                self.server.callbacks.on_ack(self.node_id, type_url, state.sent_version, state.sent_revision)
            return
        if state is None or not req.response_nonce or (state.names == () and names):
            # A new subscription (or a reconnect, or a type subscribed again after Envoy dropped
            # it: its nonce is of a response before the one it ignored): answered with what we have now.
            state = self.types.setdefault(type_url, _SotwType())
            state.names = names
            if self.config is not None:
                resources = _select(self.config, type_url, names)
                if not req.response_nonce and req.version_info and req.version_info == _set_version(resources):
                    self._resume(type_url, resources, req.version_info)
                else:
                    await self.send(type_url, resources)
            return
        if req.response_nonce != state.nonce:
            return  # stale: a newer response is in flight and its ACK/NACK will follow
        answered_version, answered_revision = state.sent_version, state.sent_revision
        if type_url == CLUSTER and self.awaited_eds:
            # Envoy is done with the CDS update (clusters it never asks endpoints for warmed or
            # timed out): what was held goes out before the ACK is counted, so no status shows
            # the proxy in sync while it lacks them.
            await self._release()
        if req.HasField("error_detail"):
            state.nacked_version = answered_version
            self.server.callbacks.on_nack(self.node_id, type_url, answered_version, answered_revision, req.error_detail.message)
            log.warning(
                "config rejected by proxy",
                extra={"node": self.node_id, "type": SHORT_NAMES.get(type_url, type_url), "error": req.error_detail.message},
            )
        else:
            # The version sent, not the request's copy of it, is kept (and shared with the status).
            state.acked_version = state.sent_version if req.version_info == state.sent_version else req.version_info
            self.server.callbacks.on_ack(self.node_id, type_url, state.acked_version, answered_revision)
        if names != state.names or (type_url in self.rewarm and self.config is not None):
            state.names = names
            resources = _select(self.config, type_url, names)
            if req.HasField("error_detail"):
                if _set_version(resources) != state.nacked_version:
                    await self.send(type_url, resources)
            elif type_url == ENDPOINT:
                # An ACK: the proxy holds what was sent, and needs only what it asks for anew.
                await self.send(type_url, resources, changed=self._eds_changes(resources, state))
            else:
                await self.send(type_url, resources)

    async def on_config(self, config: NodeConfig | None) -> None:
        """Push what changed, in Envoy's order, removing stale clusters last."""
        self.config = config
        if config is None:
            return
        for type_url in TYPE_ORDER:
            if self.awaited_eds and type_url not in (CLUSTER, ENDPOINT):
                return  # held until Envoy asks for the new clusters' endpoints (_release)
            await self._push(type_url, config)
        await self._remove_stale_clusters()

    async def _release(self) -> None:
        """Send what was held back while Envoy had not asked for the new clusters' endpoints."""
        self.awaited_eds = set()
        if self.config is None:
            return
        for type_url in TYPE_ORDER[TYPE_ORDER.index(ENDPOINT) + 1 :]:
            await self._push(type_url, self.config)
        await self._remove_stale_clusters()

    async def _push(self, type_url: str, config: NodeConfig) -> None:
        state = self.types.get(type_url)
        if state is None or state.names == ():
            return  # not subscribed, or no longer subscribed to anything of this type
        resources = _select(config, type_url, state.names)
        version = _set_version(resources)
        if version == state.nacked_version or (version == state.sent_version and type_url not in self.rewarm):
            return
        if type_url == CLUSTER:
            names = {r.name for r in resources}
            stale = [r for r in state.held if r.name not in names]
            self.final_cds = resources if stale else None
            if stale:
                resources = sorted(resources + stale, key=lambda r: r.name)
            eds = self.types.get(ENDPOINT)
            if eds is not None and eds.names is not None:
                # Envoy asks for a new cluster's endpoints once it has the cluster (a changed one
                # keeps its EDS name, subscribed already, and gets its endpoints again: rewarm).
                sent = {r.name for r in state.held}
                self.awaited_eds |= eds_names(r for r in resources if r.name not in sent)
                self.awaited_eds.difference_update(eds.names)
        elif type_url == ENDPOINT and (changed := self._eds_changes(resources, state)) is not None:
            if not changed and version == state.sent_version:
                self.rewarm.discard(ENDPOINT)  # no subscribed cluster was rebuilt: none warms
                return
            await self.send(type_url, resources, changed=changed)
            return
        await self.send(type_url, resources)

    def _eds_changes(self, resources: list[XdsResource], state: _SotwType) -> list[XdsResource] | None:
        """The assignments an EDS response must carry when the proxy confirmed it holds what
        was last sent: those that changed or are newly subscribed, and those of clusters it
        rebuilt. None when what it holds is not known (after a NACK, or with a response in
        flight): then it gets them all."""
        if state.acked_version != state.sent_version:
            return None
        return _changed(resources, state.held, also=self.rebuilt)

    async def _remove_stale_clusters(self) -> None:
        if self.final_cds is not None:
            final_cds, self.final_cds = self.final_cds, None
            await self.send(CLUSTER, final_cds)
            # Removing clusters rebuilds none: nothing to warm again.
            self.rewarm.difference_update(DEPENDENTS[CLUSTER])


def _changed(resources: list[XdsResource], held: tuple[XdsResource, ...], also: set[str] | None = None) -> list[XdsResource]:
    """Those of `resources` the proxy does not hold at their version, and those named in `also`."""
    versions = {r.name: r.version for r in held}
    return [r for r in resources if versions.get(r.name) != r.version or (also is not None and r.name in also)]


def _subscription(resource_names: Sequence[str]) -> tuple[str, ...] | None:
    """The names a request subscribes to, sorted and interned (every stream that names a
    resource holds one string for it); None for a wildcard (no names, or "*")."""
    if not resource_names or "*" in resource_names:
        return None
    return tuple(sorted({sys.intern(n) for n in resource_names}))
