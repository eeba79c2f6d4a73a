"""Which listeners of a builtin gateway a `{kind: MeshGateway, name, tags}` targetRef selects.

Kuma v2.14 (pkg/plugins/policies/core/matchers/dataplane.go, inboundsSelectedByTags): a
listener's tags are the dataplane's gateway tags, then the MeshGateway's `tags`, then the
listener's own `conf.listeners[].tags`, later ones overriding earlier ones. A MeshGateway
targetRef selects the listeners whose tags match its `tags` (none given: every listener). The
key of a listener is the dataplane's address and the listener's port, so a policy aimed at one
tagged hostname reaches every hostname on that port, as Kuma's `GatewayRules.ByListener` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.model import Resource

__all__ = ["gateway_selection", "listener_tags", "selected_listeners", "tags_match"]


def tags_match(selector: Mapping[str, str], tags: Mapping[str, str]) -> bool:
    """Every selector tag is in `tags` with that value (`*`: any value)."""
    return all(tags.get(k) == v or (v == "*" and k in tags) for k, v in selector.items())


def listener_tags(dataplane_tags: Mapping[str, Any], gateway: Resource, listener: Mapping[str, Any]) -> dict[str, str]:
    """The tags of one `conf.listeners` item: dataplane gateway tags < MeshGateway tags < listener tags."""
    merged = {**dataplane_tags, **(gateway.spec.get("tags") or {}), **(listener.get("tags") or {})}
    return {str(k): str(v) for k, v in merged.items()}


def selected_listeners(
    address: str, dataplane_tags: Mapping[str, Any], gateway: Resource, selector: Mapping[str, Any]
) -> frozenset[tuple[str, int]]:
    """(address, port) of every listener of `gateway` whose tags match `selector`."""
    wanted = {str(k): str(v) for k, v in selector.items()}
    return frozenset(
        (address, int(listener.get("port") or 0))
        for listener in (gateway.spec.get("conf") or {}).get("listeners") or ()
        if tags_match(wanted, listener_tags(dataplane_tags, gateway, listener))
    )


def gateway_selection(
    address: str, gateway: Mapping[str, Any] | None, builtin: Resource | None, selector: Mapping[str, Any]
) -> tuple[frozenset[tuple[str, int]], bool]:
    """What tags `selector` select of a dataplane's gateway: (listeners, whether the proxy is selected).

    `gateway` is the dataplane's `networking.gateway`, `builtin` the MeshGateway configuring it
    (None: not a builtin gateway, or no MeshGateway selects it; then the gateway tags decide)."""
    tags = (gateway or {}).get("tags") or {}
    if builtin is None:
        return frozenset(), bool(gateway) and tags_match({str(k): str(v) for k, v in selector.items()}, tags)
    listeners = selected_listeners(address, tags, builtin, selector)
    return listeners, bool(listeners)
