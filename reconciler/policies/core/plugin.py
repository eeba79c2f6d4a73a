"""How a policy kind changes Envoy resources: the hooks its `<kind>/envoy.py` exports as `PLUGIN`.

The generator builds each Envoy resource, then hands it to every plugin that has a hook for
that resource and a merged conf for it (from the targetRef engine), in the registry's order
(policies/registry.py, PLUGIN_ORDER), before serializing it. Hooks change only the message
they are given, which belongs to the resource being built; they never see other proxies or
other resources.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.model import Resource

__all__ = ["Plugin", "HookContext", "Hook"]

Direction = Literal["inbound", "outbound"]


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


Hook = Callable[[Any, Mapping[str, Any], HookContext], None]
"""(Envoy message being built, merged conf, context) -> None; changes the message."""


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
