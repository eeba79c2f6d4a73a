"""The Aggregated Discovery Service on grpc.aio: state-of-the-world and delta xDS.

Protocol points this implements (envoyproxy.io "xDS REST and gRPC protocol"):
- per stream and per type: nonce, last version sent, subscription, ACKed version;
- SotW: a request whose nonce is not the latest sent for its type is stale and ignored;
  a NACK (error_detail) is recorded and the rejected content is never re-sent, only newer
  content; an ACK with a changed subscription is always answered, even when nothing changed
  (Envoy re-requests EDS after a cluster change and stalls 15 s if unanswered); LDS and CDS
  are full state; an initial request is always answered;
- updates go out in the order CDS, EDS, LDS, RDS, SDS, and clusters that disappear are
  removed only after the listeners and routes that used them (make before break);
- delta: subscribe/unsubscribe are applied from every request, even with a stale nonce;
  wildcard by an empty first subscription (LDS/CDS) or "*"; `removed_resources` for
  resources that disappear or that a client asked for and do not exist;
  `initial_resource_versions` avoids re-sending what a reconnecting client has.

The server sees configuration only through a `ConfigWatcher` (xds/cache.py) and reports
what happens on each stream through `StreamCallbacks`.

Admission: a stream must send its first request (the one with the node) within
`first_request_timeout`, else it is closed with DEADLINE_EXCEEDED, so an idle connection
does not hold a stream forever. `on_open`, and the watcher at any later point, refuse a
stream by raising `XdsRejected`; any other exception in `on_open` is logged here and the
proxy gets INTERNAL with a short message, never the exception's text. Bytes that are not a
request end the stream with INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf.message import DecodeError

from reconciler.xds.cache import ConfigWatcher, NodeConfig
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, SHORT_NAMES, TYPE_ORDER, XdsResource

__all__ = ["AdsServer", "StreamCallbacks", "XdsRejected", "NoCallbacks", "add_ads_server", "FIRST_REQUEST_TIMEOUT"]

log = logging.getLogger(__name__)

WILDCARD_TYPES = frozenset({LISTENER, CLUSTER})
FIRST_REQUEST_TIMEOUT = 15.0
"""Seconds a new stream has to send its first request. Envoy sends it as soon as the stream
opens; a proxy under heavy load still makes it in well under this."""

DEPENDENTS = {CLUSTER: (ENDPOINT, SECRET), LISTENER: (ROUTE, SECRET)}
"""A changed cluster or listener is rebuilt and warms until Envoy has its endpoints, routes
and secrets again; it asks for them with an unchanged subscription, so they are sent again
after every CDS/LDS update even when their versions did not change."""


class XdsRejected(Exception):
    """Raised by `StreamCallbacks.on_open` (or the watcher) to refuse a stream with a gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


MALFORMED = XdsRejected(grpc.StatusCode.INVALID_ARGUMENT, "malformed request: not a DiscoveryRequest protobuf message")
"""What a stream whose bytes do not decode gets (gRPC's default is UNKNOWN with the decoder's text)."""


class StreamCallbacks(Protocol):
    async def on_open(self, node: base_pb2.Node, mode: str) -> str:
        """Admit a stream: return the node id whose config it gets, or raise XdsRejected."""
        ...

    def on_close(self, node_id: str, mode: str) -> None: ...

    def on_sent(self, node_id: str, type_url: str, version: str, revision: str) -> None: ...

    def on_ack(self, node_id: str, type_url: str, version: str, revision: str) -> None: ...

    def on_nack(self, node_id: str, type_url: str, version: str, revision: str, message: str) -> None: ...

    def on_config(self, node_id: str, config: NodeConfig) -> None:
        """The stream has pushed everything that changed up to this config of the node."""
        ...


class NoCallbacks:
    """Admit every node under its own id; record nothing."""

    async def on_open(self, node: base_pb2.Node, mode: str) -> str:
        return node.id

    def on_close(self, node_id: str, mode: str) -> None:
        pass

    def on_sent(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        pass

    def on_ack(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        pass

    def on_nack(self, node_id: str, type_url: str, version: str, revision: str, message: str) -> None:
        pass

    def on_config(self, node_id: str, config: NodeConfig) -> None:
        pass


def _set_version(resources: Iterable[XdsResource]) -> str:
    h = hashlib.sha256()
    for r in resources:
        h.update(f"{r.name}\0{r.version}\0".encode())
    return h.hexdigest()[:16]


def _select(config: NodeConfig | None, type_url: str, names: set[str] | None) -> list[XdsResource]:
    if config is None:
        return []
    table = config.resources.of(type_url)
    if names is None:
        return [r for r in table.values() if not r.by_name_only]
    return [table[n] for n in sorted(names) if n in table]


# -- state of the world ---------------------------------------------------------------------
@dataclass(slots=True)
class _SotwType:
    names: set[str] | None = None
    """None is a wildcard subscription."""
    nonce: str = ""
    sent_version: str = ""
    sent: dict[str, XdsResource] = field(default_factory=dict)
    sent_revision: str = ""
    acked_version: str = ""
    nacked_version: str = ""


class _SotwStream:
    def __init__(self, server: AdsServer, node_id: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.server = server
        self.node_id = node_id
        self.context = context
        self.types: dict[str, _SotwType] = {}
        self.nonces = itertools.count(1)
        self.config: NodeConfig | None = server.watcher.fetch(node_id)
        self.rewarm: set[str] = set()

    async def send(self, type_url: str, resources: list[XdsResource], *, record: bool = True) -> None:
        state = self.types[type_url]
        self.rewarm.update(DEPENDENTS.get(type_url, ()))
        self.rewarm.discard(type_url)
        version = _set_version(resources)
        nonce = str(next(self.nonces))
        response = discovery_pb2.DiscoveryResponse(
            version_info=version,
            type_url=type_url,
            nonce=nonce,
            resources=[r.as_any() for r in resources],
            control_plane=self.server.control_plane,
        )
        state.nonce = nonce
        state.sent_version = version
        state.sent = {r.name: r for r in resources}
        state.sent_revision = self.config.revision if self.config else ""
        await self.context.write(response)
        if record:
            self.server.callbacks.on_sent(self.node_id, type_url, version, state.sent_revision)
        log.debug(
            "sent", extra={"node": self.node_id, "type": SHORT_NAMES.get(type_url, type_url), "version": version, "count": len(resources)}
        )

    async def on_request(self, req: discovery_pb2.DiscoveryRequest) -> None:
        type_url = req.type_url
        state = self.types.get(type_url)
        names: set[str] | None = set(req.resource_names) - {"*"} if req.resource_names else None
        if req.resource_names and "*" in req.resource_names:
            names = None
        if names is None and type_url not in WILDCARD_TYPES:
            names = set()  # an empty subscription to a non-wildcard type asks for nothing
        if state is None or not req.response_nonce:
            # A new subscription (or a reconnect): always answered, with what we have now.
            state = self.types.setdefault(type_url, _SotwType())
            state.names = names
            if self.config is not None:
                await self.send(type_url, _select(self.config, type_url, names))
            return
        if req.response_nonce != state.nonce:
            return  # stale: a newer response is in flight and its ACK/NACK will follow
        if req.HasField("error_detail"):
            state.nacked_version = state.sent_version
            self.server.callbacks.on_nack(self.node_id, type_url, state.sent_version, state.sent_revision, req.error_detail.message)
            log.warning(
                "config rejected by proxy",
                extra={"node": self.node_id, "type": SHORT_NAMES.get(type_url, type_url), "error": req.error_detail.message},
            )
        else:
            state.acked_version = req.version_info
            self.server.callbacks.on_ack(self.node_id, type_url, req.version_info, state.sent_revision)
        if names != state.names or (type_url in self.rewarm and self.config is not None):
            state.names = names
            resources = _select(self.config, type_url, names)
            if not req.HasField("error_detail") or _set_version(resources) != state.nacked_version:
                await self.send(type_url, resources)

    async def on_config(self, config: NodeConfig | None) -> None:
        """Push what changed, in Envoy's order, removing stale clusters last."""
        self.config = config
        if config is None:
            return
        final_cds: list[XdsResource] | None = None
        for type_url in TYPE_ORDER:
            state = self.types.get(type_url)
            if state is None:
                continue
            resources = _select(config, type_url, state.names)
            version = _set_version(resources)
            if version == state.nacked_version or (version == state.sent_version and type_url not in self.rewarm):
                continue
            if type_url == CLUSTER:
                names = {r.name for r in resources}
                stale = [r for n, r in state.sent.items() if n not in names]
                if stale:
                    final_cds = resources
                    resources = sorted(resources + stale, key=lambda r: r.name)
            await self.send(type_url, resources)
        if final_cds is not None:
            await self.send(CLUSTER, final_cds)
            # Removing clusters rebuilds none: nothing to warm again.
            self.rewarm.difference_update(DEPENDENTS[CLUSTER])


# -- delta ----------------------------------------------------------------------------------
@dataclass(slots=True)
class _DeltaType:
    wildcard: bool = False
    names: set[str] = field(default_factory=set)
    known: dict[str, str] = field(default_factory=dict)
    """What the client has: name → version (from initial_resource_versions and our sends)."""
    nonce: str = ""
    sent_revision: str = ""
    pending_versions: dict[str, str] = field(default_factory=dict)
    nacked: dict[str, str] = field(default_factory=dict)
    """Versions of the last rejected response: not sent again."""
    absent: set[str] = field(default_factory=set)
    """Subscribed names we already told the client do not exist."""


class _DeltaStream:
    def __init__(self, server: AdsServer, node_id: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
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
        state.absent.intersection_update(state.names)
        state.absent.difference_update(wanted)
        state.absent.update(missing)
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
        state.pending_versions = {r.name: r.version for r in changed}
        for r in changed:
            state.known[r.name] = r.version
        for n in removed:
            state.known.pop(n, None)
        await self.context.write(response)
        self.server.callbacks.on_sent(self.node_id, type_url, nonce, state.sent_revision)

    async def on_request(self, req: discovery_pb2.DeltaDiscoveryRequest) -> None:
        type_url = req.type_url
        state = self.types.get(type_url)
        first = state is None
        if state is None:
            state = self.types[type_url] = _DeltaType()
            state.known = dict(req.initial_resource_versions)
            if type_url in WILDCARD_TYPES and not req.resource_names_subscribe:
                state.wildcard = True
        # Subscription changes count whatever the nonce says.
        for name in req.resource_names_subscribe:
            if name == "*":
                state.wildcard = True
            else:
                state.names.add(name)
        for name in req.resource_names_unsubscribe:
            if name == "*":
                state.wildcard = False
            else:
                state.names.discard(name)
                state.known.pop(name, None)
        if req.response_nonce and req.response_nonce == state.nonce:
            if req.HasField("error_detail"):
                state.nacked = dict(state.pending_versions)
                for n in state.pending_versions:
                    state.known.pop(n, None)
                self.server.callbacks.on_nack(self.node_id, type_url, req.response_nonce, state.sent_revision, req.error_detail.message)
                log.warning(
                    "config rejected by proxy",
                    extra={"node": self.node_id, "type": SHORT_NAMES.get(type_url, type_url), "error": req.error_detail.message},
                )
            else:
                state.nacked = {}
                self.server.callbacks.on_ack(self.node_id, type_url, req.response_nonce, state.sent_revision)
        await self.push(type_url, force=first)

    async def on_config(self, config: NodeConfig | None) -> None:
        self.config = config
        if config is None:
            return
        rewarm: set[str] = set()
        for type_url in TYPE_ORDER:
            state = self.types.get(type_url)
            if state is None:
                continue
            if type_url in rewarm:
                state.known.clear()  # resend what warming clusters and listeners need
            nonce = state.nonce
            await self.push(type_url)
            if state.nonce != nonce:
                rewarm.update(DEPENDENTS.get(type_url, ()))


# -- the service ------------------------------------------------------------------------------
class AdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(
        self,
        watcher: ConfigWatcher,
        callbacks: StreamCallbacks | None = None,
        *,
        control_plane_id: str = "mesh-reconciler",
        first_request_timeout: float = FIRST_REQUEST_TIMEOUT,
    ) -> None:
        self.watcher = watcher
        self.callbacks: StreamCallbacks = callbacks or NoCallbacks()
        self.control_plane = base_pb2.ControlPlane(identifier=control_plane_id)
        self.first_request_timeout = first_request_timeout
        self.streams = 0

    async def StreamAggregatedResources(self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await self._serve(context, "sotw")

    async def DeltaAggregatedResources(self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await self._serve(context, "delta")

    async def _serve(self, context: grpc.aio.ServicerContext[Any, Any], mode: str) -> None:
        try:
            first = await asyncio.wait_for(context.read(), self.first_request_timeout)
        except TimeoutError:
            log.warning("stream closed: no first request", extra={"peer": context.peer(), "seconds": self.first_request_timeout})
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no DiscoveryRequest within {self.first_request_timeout:g}s of opening the stream"
            )
            return
        except DecodeError:
            log.warning("stream closed: malformed request", extra={"peer": context.peer()})
            await context.abort(MALFORMED.code, MALFORMED.message)
            return
        if first is grpc.aio.EOF:
            return
        node_id = await self._admit(context, first, mode)
        self.streams += 1
        try:
            stream: _SotwStream | _DeltaStream = (_SotwStream if mode == "sotw" else _DeltaStream)(self, node_id, context)
            requests: asyncio.Queue[Any] = asyncio.Queue()
            requests.put_nowait(first)
            reader = asyncio.ensure_future(self._read(context, requests))
            try:
                await self._loop(stream, requests)
            finally:
                reader.cancel()
        except XdsRejected as e:  # the watcher no longer admits this stream
            log.warning("stream closed", extra={"node": node_id, "reason": e.message})
            await context.abort(e.code, e.message)
        except Exception as e:
            # A proxy that goes away while a response is being written fails that write inside
            # gRPC; the stream is over either way, which is not an error of the control plane.
            if not (context.cancelled() or context.done()):
                raise
            log.debug("stream ended by the proxy during a write", extra={"node": node_id, "error": type(e).__name__})
        finally:
            self.streams -= 1
            self.callbacks.on_close(node_id, mode)

    async def _admit(self, context: grpc.aio.ServicerContext[Any, Any], first: Any, mode: str) -> str:
        """The node id `on_open` admits; otherwise the stream is aborted with a short status."""
        try:
            return await self.callbacks.on_open(first.node, mode)
        except XdsRejected as e:
            log.warning("stream refused", extra={"node": first.node.id, "reason": e.message})
            await context.abort(e.code, e.message)
        except Exception:  # a bug must not hand the proxy a Python exception text (gRPC's UNKNOWN)
            log.exception("admission failed", extra={"node": first.node.id})
            await context.abort(grpc.StatusCode.INTERNAL, "admission failed: internal error in the control plane (see its log)")
        raise AssertionError("context.abort returned")  # pragma: no cover

    @staticmethod
    async def _read(context: grpc.aio.ServicerContext[Any, Any], requests: asyncio.Queue[Any]) -> None:
        try:
            while True:
                msg = await context.read()
                if msg is grpc.aio.EOF:
                    break
                requests.put_nowait(msg)
        except DecodeError:
            requests.put_nowait(MALFORMED)
        except (asyncio.CancelledError, grpc.aio.AioRpcError, grpc.RpcError):
            pass
        finally:
            requests.put_nowait(None)

    async def _loop(self, stream: _SotwStream | _DeltaStream, requests: asyncio.Queue[Any]) -> None:
        next_request: asyncio.Future[Any] = asyncio.ensure_future(requests.get())
        generation = stream.config.generation if stream.config else -1
        if stream.config is not None:
            self.callbacks.on_config(stream.node_id, stream.config)
        change: asyncio.Future[NodeConfig | None] = asyncio.ensure_future(self.watcher.wait(stream.node_id, generation))
        try:
            while True:
                done, _ = await asyncio.wait({next_request, change}, return_when=asyncio.FIRST_COMPLETED)
                if next_request in done:
                    req = next_request.result()
                    if req is None:
                        return
                    if isinstance(req, XdsRejected):
                        raise req
                    await stream.on_request(req)
                    next_request = asyncio.ensure_future(requests.get())
                if change in done:
                    config = change.result()
                    await stream.on_config(config)
                    if config is not None:
                        generation = config.generation
                        self.callbacks.on_config(stream.node_id, config)
                    change = asyncio.ensure_future(self.watcher.wait(stream.node_id, generation))
        finally:
            next_request.cancel()
            change.cancel()


def add_ads_server(server: grpc.aio.Server, ads: AdsServer) -> None:
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(ads, server)
