"""What the ADS server shares with its SotW and delta streams: the stream callbacks the control
plane implements (admission, sent/ACK/NACK bookkeeping), the exception that refuses a stream,
the types Envoy may subscribe to by wildcard, and the dependents a changed cluster or listener
needs sent again while it warms.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Collection, Iterable
from typing import Protocol

import grpc
from envoy.config.core.v3 import base_pb2

from reconciler.xds.cache import ConfigWatcher, NodeConfig
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, TYPE_ORDER, XdsResource

__all__ = [
    "XdsRejected",
    "MALFORMED",
    "StreamCallbacks",
    "NoCallbacks",
    "StreamHost",
    "WILDCARD_TYPES",
    "DEPENDENTS",
    "set_version",
    "select",
    "known_type",
]

WILDCARD_TYPES = frozenset({LISTENER, CLUSTER})

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

    def on_resumed(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        """A reconnecting proxy already has this type's current config (it was served by this
        or another replica): nothing is sent, and what it has counts as acknowledged."""
        ...

    def on_config(self, node_id: str, config: NodeConfig) -> None:
        """The stream has pushed everything that changed up to this config of the node."""
        ...

    def on_stream_end(self, mode: str, code: str) -> None:
        """A stream ended ("sotw" or "delta", the gRPC status code's name); already logged."""
        ...


class NoCallbacks:
    """Admit every node under its own id; record nothing."""

    async def on_open(self, node: base_pb2.Node, mode: str) -> str:
        return str(node.id)

    def on_close(self, node_id: str, mode: str) -> None:
        pass

    def on_sent(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        pass

    def on_ack(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        pass

    def on_nack(self, node_id: str, type_url: str, version: str, revision: str, message: str) -> None:
        pass

    def on_resumed(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        pass

    def on_config(self, node_id: str, config: NodeConfig) -> None:
        pass

    def on_stream_end(self, mode: str, code: str) -> None:
        pass


class StreamHost(Protocol):
    """What a stream needs of the server that runs it (xds/server.py's AdsServer)."""

    watcher: ConfigWatcher
    callbacks: StreamCallbacks
    control_plane: base_pb2.ControlPlane


_KNOWN_TYPES = {t: t for t in TYPE_ORDER}


def known_type(type_url: str) -> str:
    """The module's own string for a type URL a request names: one object for every stream's
    per-type state, not a copy decoded from each request."""
    return _KNOWN_TYPES.get(type_url, type_url)


def set_version(resources: Iterable[XdsResource]) -> str:
    """The version of a SotW response: a hash of its resources' names and versions. Interned:
    the proxies that get the same set keep one string."""
    h = hashlib.sha256()
    for r in resources:
        h.update(f"{r.name}\0{r.version}\0".encode())
    return sys.intern(h.hexdigest()[:16])


def select(config: NodeConfig | None, type_url: str, names: Collection[str] | None) -> list[XdsResource]:
    """What a SotW subscription (`names`, None for wildcard) gets of the node's config."""
    if config is None:
        return []
    table = config.resources.of(type_url)
    if names is None:
        return [r for r in table.values() if not r.by_name_only]
    return [table[n] for n in sorted(names) if n in table]
