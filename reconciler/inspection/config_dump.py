"""A proxy's Envoy config as served, in two JSON forms, never with key material:

- `xds_config`: Kuma's DataplaneXDSConfig `xds` field (`GET .../dataplanes/{name}/_config`),
  resources by type URL, then by name;
- `config_dump`: Envoy's admin `/config_dump` (envoy.admin.v3.ConfigDump) of the dynamic
  resources, what `kumactl inspect dataplane --type config-dump` prints; in Envoy's own JSON,
  whose fields keep their proto names (`dynamic_listeners`, `connect_timeout`).

Secrets are masked the way Envoy's admin masks them: every sensitive field holds the bytes
`[redacted]`; other resources go through XdsResource.public_dict."""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import json_format

from reconciler.xds.resources import SENSITIVE_KEYS, ProxyResources, XdsResource
from reconciler.xds_types import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, TYPE_ORDER

__all__ = ["xds_config", "config_dump", "masked", "ENVOY_REDACTED"]

ENVOY_REDACTED = base64.b64encode(b"[redacted]").decode()
"""What Envoy's config dump shows in place of a private key (inlineBytes of `[redacted]`)."""

_ADMIN = "type.googleapis.com/envoy.admin.v3."
_SNAKE_SENSITIVE = frozenset({"private_key", "password", "session_ticket_keys", "hmac_secret", "generic_secret"})


def _mask(value: Any, snake: bool = False) -> Any:
    if isinstance(value, dict):
        keys = _SNAKE_SENSITIVE if snake else SENSITIVE_KEYS
        redacted = {"inline_bytes" if snake else "inlineBytes": ENVOY_REDACTED}
        return {k: (redacted if k in keys else _mask(v, snake)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, snake) for v in value]
    return value


def masked(resource: XdsResource) -> dict[str, Any]:
    """The resource as Envoy's JSON, key material replaced (Secrets) or redacted (others)."""
    if resource.type_url == SECRET:
        return _mask(resource.to_dict())  # type: ignore[no-any-return]
    return resource.public_dict()


def _typed(resource: XdsResource) -> dict[str, Any]:
    """As Envoy's dump shows it: proto field names, every sensitive field masked."""
    body = json_format.MessageToDict(resource.message(), preserving_proto_field_name=True)
    return {"@type": resource.type_url, **_mask(body, snake=True)}


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
            "version_info": version,
            "dynamic_active_clusters": [{"version_info": r.version, "cluster": _typed(r)} for r in of(CLUSTER)],
        },
        {
            "@type": _ADMIN + "EndpointsConfigDump",
            "dynamic_endpoint_configs": [{"version_info": r.version, "endpoint_config": _typed(r)} for r in of(ENDPOINT)],
        },
        {
            "@type": _ADMIN + "ListenersConfigDump",
            "version_info": version,
            "dynamic_listeners": [
                {"name": r.name, "active_state": {"version_info": r.version, "listener": _typed(r)}} for r in of(LISTENER)
            ],
        },
        {
            "@type": _ADMIN + "RoutesConfigDump",
            "dynamic_route_configs": [{"version_info": r.version, "route_config": _typed(r)} for r in of(ROUTE)],
        },
        {
            "@type": _ADMIN + "SecretsConfigDump",
            "dynamic_active_secrets": [{"name": r.name, "version_info": r.version, "secret": _typed(r)} for r in of(SECRET)],
        },
    ]
    return {"configs": configs}
