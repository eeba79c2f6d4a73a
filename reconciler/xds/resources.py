"""Envoy resources as content-addressed values.

An `XdsResource` is one Envoy resource serialized once: its name, its type URL, the bytes of
the message and a version that is the hash of those bytes. Identical resources generated for
many proxies are the same object (see `intern`), so a thousand proxies that talk to the same
service share one serialized cluster.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakValueDictionary

from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message

from reconciler.xds_types import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, SHORT_NAMES, TYPE_ORDER

__all__ = [
    "LISTENER",
    "ROUTE",
    "CLUSTER",
    "ENDPOINT",
    "SECRET",
    "TYPE_ORDER",
    "SHORT_NAMES",
    "XdsResource",
    "ProxyResources",
    "resource",
    "resource_from_payload",
    "intern",
    "message_class",
    "redact",
    "REDACTED",
]


def message_class(type_url: str) -> type[Message]:
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.config.endpoint.v3 import endpoint_pb2
    from envoy.config.listener.v3 import listener_pb2
    from envoy.config.route.v3 import route_pb2
    from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

    classes: dict[str, type[Message]] = {
        LISTENER: listener_pb2.Listener,
        ROUTE: route_pb2.RouteConfiguration,
        CLUSTER: cluster_pb2.Cluster,
        ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
        SECRET: secret_pb2.Secret,
    }
    return classes[type_url]


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class XdsResource:
    type_url: str
    name: str
    version: str
    payload: bytes = field(repr=False)
    by_name_only: bool = False
    """Sent only to clients that ask for it by name, never in a wildcard response
    (gRPC's API listeners, which Envoy itself would reject)."""

    def as_any(self) -> any_pb2.Any:
        return any_pb2.Any(type_url=self.type_url, value=self.payload)

    def message(self) -> Message:
        msg = message_class(self.type_url)()
        msg.ParseFromString(self.payload)
        return msg

    def public_dict(self) -> dict[str, Any]:
        """`to_dict` for people: Secrets reduced to their name, key material anywhere redacted."""
        if self.type_url == SECRET:
            return {"name": self.name, "content": REDACTED}
        return redact(self.to_dict())  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        """The resource as Envoy's JSON (camelCase), for inspect, plan and golden files."""
        return json.loads(json_format.MessageToJson(self.message(), preserving_proto_field_name=False))  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, XdsResource) and self.version == other.version and self.name == other.name and self.type_url == other.type_url
        )

    def __hash__(self) -> int:
        return hash((self.type_url, self.name, self.version))


REDACTED = "<redacted>"
SENSITIVE_KEYS = frozenset({"privateKey", "password", "sessionTicketKeys", "hmacSecret", "genericSecret"})
"""Envoy JSON fields that hold key material: never printed, logged or served by the API."""


def redact(value: Any) -> Any:
    """`value` (Envoy JSON) with every field that holds key material replaced by REDACTED."""
    if isinstance(value, dict):
        return {k: (REDACTED if k in SENSITIVE_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


_interned: WeakValueDictionary[tuple[str, str, str, bool], XdsResource] = WeakValueDictionary()
_lock = threading.Lock()


def intern(res: XdsResource) -> XdsResource:
    """The one shared object for this content (saves memory across proxies)."""
    key = (res.type_url, res.name, res.version, res.by_name_only)
    with _lock:
        existing = _interned.get(key)
        if existing is not None:
            return existing
        _interned[key] = res
        return res


def resource(type_url: str, name: str, message: Message, *, by_name_only: bool = False) -> XdsResource:
    """Serialize `message` deterministically and version it by content."""
    return resource_from_payload(type_url, name, message.SerializeToString(deterministic=True), by_name_only=by_name_only)


def resource_from_payload(type_url: str, name: str, payload: bytes, *, by_name_only: bool = False) -> XdsResource:
    """A resource whose bytes were assembled already (a message's fields may be concatenated)."""
    version = hashlib.sha256(payload).hexdigest()[:16]
    return intern(XdsResource(type_url, name, version, payload, by_name_only))


@dataclass(frozen=True, slots=True)
class ProxyResources:
    """Everything one proxy is served, by type URL then resource name."""

    by_type: Mapping[str, Mapping[str, XdsResource]]
    problems: tuple[str, ...] = ()
    """What generation skipped and the user should hear of (a MeshProxyPatch modification that
    cannot be applied): `plan` shows them; the server logs them."""

    @classmethod
    def build(cls, items: Iterable[XdsResource]) -> ProxyResources:
        by_type: dict[str, dict[str, XdsResource]] = {t: {} for t in TYPE_ORDER}
        for r in items:
            by_type.setdefault(r.type_url, {})[r.name] = r
        return cls({t: dict(sorted(v.items())) for t, v in by_type.items()})

    def of(self, type_url: str) -> Mapping[str, XdsResource]:
        return self.by_type.get(type_url, {})

    def __iter__(self) -> Iterator[XdsResource]:
        for t in TYPE_ORDER:
            yield from self.of(t).values()

    def count(self) -> int:
        return sum(len(v) for v in self.by_type.values())
