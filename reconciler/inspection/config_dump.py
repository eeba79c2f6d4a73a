"""A proxy's Envoy config as served, in two JSON forms, never with key material:

- `xds_config`: Kuma's DataplaneXDSConfig `xds` field (`GET .../dataplanes/{name}/_config`),
  resources by type URL, then by name;
- `config_dump`: Envoy's admin `/config_dump` (envoy.admin.v3.ConfigDump) of the dynamic
  resources, what `kumactl inspect dataplane --type config-dump` prints.

Secrets are masked the way Envoy's admin masks them: every sensitive field holds the bytes
`[redacted]`; other resources go through XdsResource.public_dict."""

from __future__ import annotations

import base64
from typing import Any

from reconciler.xds.resources import SENSITIVE_KEYS, ProxyResources, XdsResource
from reconciler.xds_types import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, TYPE_ORDER

__all__ = ["xds_config", "config_dump", "masked", "ENVOY_REDACTED"]

ENVOY_REDACTED = base64.b64encode(b"[redacted]").decode()
"""What Envoy's config dump shows in place of a private key (inlineBytes of `[redacted]`)."""

_ADMIN = "type.googleapis.com/envoy.admin.v3."


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ({"inlineBytes": ENVOY_REDACTED} if k in SENSITIVE_KEYS else _mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def masked(resource: XdsResource) -> dict[str, Any]:
    """The resource as Envoy's JSON, key material replaced (Secrets) or redacted (others)."""
    if resource.type_url == SECRET:
        return _mask(resource.to_dict())  # type: ignore[no-any-return]
    return resource.public_dict()


def _typed(resource: XdsResource) -> dict[str, Any]:
    return {"@type": resource.type_url, **masked(resource)}


def xds_config(resources: ProxyResources) -> dict[str, dict[str, Any]]:
    """Kuma's `xds`: {type URL: {name: resource}} in xDS order (Kuma leaves out empty types)."""
    out: dict[str, dict[str, Any]] = {}
    for type_url in TYPE_ORDER:
        found = resources.of(type_url)
        if found:
            out[type_url] = {name: masked(found[name]) for name in sorted(found)}
    return out


def config_dump(resources: ProxyResources, version: str) -> dict[str, Any]:
    """Envoy's admin ConfigDump of the dynamic resources: each with its own served version, the
    dumps of clusters and listeners at `version` (the revision the proxy was given)."""

    def of(type_url: str) -> list[XdsResource]:
        found = resources.of(type_url)
        return [found[n] for n in sorted(found)]

    configs: list[dict[str, Any]] = [
        {
            "@type": _ADMIN + "ClustersConfigDump",
            "versionInfo": version,
            "dynamicActiveClusters": [{"versionInfo": r.version, "cluster": _typed(r)} for r in of(CLUSTER)],
        },
        {
            "@type": _ADMIN + "EndpointsConfigDump",
            "dynamicEndpointConfigs": [{"versionInfo": r.version, "endpointConfig": _typed(r)} for r in of(ENDPOINT)],
        },
        {
            "@type": _ADMIN + "ListenersConfigDump",
            "versionInfo": version,
            "dynamicListeners": [{"name": r.name, "activeState": {"versionInfo": r.version, "listener": _typed(r)}} for r in of(LISTENER)],
        },
        {
            "@type": _ADMIN + "RoutesConfigDump",
            "dynamicRouteConfigs": [{"versionInfo": r.version, "routeConfig": _typed(r)} for r in of(ROUTE)],
        },
        {
            "@type": _ADMIN + "SecretsConfigDump",
            "dynamicActiveSecrets": [{"name": r.name, "versionInfo": r.version, "secret": _typed(r)} for r in of(SECRET)],
        },
    ]
    return {"configs": configs}
