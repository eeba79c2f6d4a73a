"""How a policy kind changes Envoy resources: the hooks its `<kind>/envoy.py` exports as `PLUGIN`.

The generator builds each Envoy resource, then hands it to every plugin that has a hook for
that resource and a merged conf for it (from the targetRef engine), in the registry's order
(policies/registry.py, PLUGIN_ORDER), before serializing it. Hooks change only the message
they are given, which belongs to the resource being built; they never see other proxies or
other resources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.model import Resource

__all__ = ["Plugin", "HookContext", "Hook", "OtelBackend", "ProxyFacts", "ProxyResources"]

Direction = Literal["inbound", "outbound"]


@dataclass(frozen=True, slots=True)
class OtelBackend:
    """A MeshOpenTelemetryBackend of the proxy's mesh, frozen (hooks resolve `backendRef`s by labels)."""

    name: str
    labels: Mapping[str, str]
    spec: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ProxyFacts:
    """Who the proxy is, for hooks whose output names it (access-log placeholders such as
    `%KUMA_SOURCE_SERVICE%`, a tracer's service name, metric labels)."""

    mesh: str
    name: str
    service: str
    """The first inbound's `kuma.io/service` (a builtin gateway's own service)."""
    address: str
    """`networking.address`."""
    gateway: bool = False
    """A builtin gateway proxy."""
    otel_backends: tuple[OtelBackend, ...] = ()
    """The mesh's MeshOpenTelemetryBackends, by name."""


@dataclass(frozen=True, slots=True)
class HookContext:
    """Where a hook runs: which side, which service, which cluster, which protocol."""

    direction: Direction
    service: str
    cluster: str
    protocol: str
    mesh: str = ""
    route: str = ""
    """The MeshHTTPRoute name, for route-level confs."""
    gateway: bool = False
    """A builtin gateway's listener, route or backend (Kuma: the gateway generator)."""
    proxy: ProxyFacts | None = None
    """The proxy, on the listener-side pieces (listener, HTTP connection manager, TCP proxy,
    routes) whose confs have a kind that `needs_proxy`; otherwise None, so proxies alike share
    them. Outbound clusters and endpoints never get it: they stay shared."""


Hook = Callable[[Any, Mapping[str, Any], HookContext], None]
"""(Envoy message being built, merged conf, context) -> None; changes the message."""

ProxyResources = Callable[[Mapping[str, Any] | None, Sequence[Mapping[str, Any]], ProxyFacts], Iterable[tuple[str, str, Any]]]
"""(the proxy-wide conf or None, every distinct conf of the kind anywhere on the proxy, the proxy)
-> extra resources as (type URL from reconciler.xds_types, name, Envoy message): collector
clusters, metrics listeners, the dynamic-config listener."""


@dataclass(frozen=True, slots=True)
class Plugin:
    kind: str
    cluster: Hook | None = None
    """Outbound EDS cluster, or the inbound's local application cluster."""
    load_assignment: Hook | None = None
    """Outbound ClusterLoadAssignment."""
    http_connection_manager: Hook | None = None
    """HCM of an inbound or outbound HTTP listener (timeouts, HTTP filters)."""
    tcp_proxy: Hook | None = None
    """TcpProxy of an inbound or outbound TCP listener."""
    listener: Hook | None = None
    """The listener itself, after its filter chain is built (network filters before the last)."""
    route: Hook | None = None
    """Each route of an HTTP route configuration (timeouts, retries, hash policies)."""
    inbound: bool = True
    """Whether the kind configures inbounds (from `from`/`rules`)."""
    outbound: bool = True
    """Whether the kind configures outbounds (from `to`)."""
    defaults: Callable[[str], list[Resource]] | None = None
    """Kuma's default policies of this kind for a new mesh (see docs/policies.md)."""
    inbound_conf: Callable[..., Mapping[str, Any] | None] | None = None
    """(dataplane, inbound, policy index, mtls on) -> conf: replaces the merged `from`/`rules`
    conf for kinds that need per-client structure (MeshTrafficPermission)."""
    outbound_conf: Callable[..., Mapping[str, Any] | None] | None = None
    """(dataplane, destination, policy index) -> conf: replaces the merged `to` conf for kinds
    whose outbound side follows from something else (MeshTLS: its mesh-wide inbound conf)."""
    proxy_wide: bool = False
    """The kind's conf is the proxy's merged top-level `default` (MeshTrace, MeshMetric): it is
    given to the hooks of every inbound and outbound as their conf of this kind."""
    per_proxy: bool | Callable[[Mapping[str, Any]], bool] = False
    """Its hooks read `HookContext.proxy`, so an outbound piece with its conf is built for each
    proxy instead of being shared by proxies alike (the access log's `%KUMA_SOURCE_SERVICE%`).
    A function of the conf says which confs need the proxy (MeshTrace: not Zipkin's); sharing
    is what keeps generation cheap for many proxies (docs/performance.md)."""
    proxy_resources: ProxyResources | None = None
    """Resources the kind adds to the proxy as a whole (see `ProxyResources`); called once per
    proxy that has a conf of the kind anywhere."""

    def needs_proxy(self, conf: Mapping[str, Any]) -> bool:
        """Whether hooks given `conf` read `HookContext.proxy` (see `per_proxy`)."""
        return self.per_proxy(conf) if callable(self.per_proxy) else self.per_proxy
