"""A resource as Kuma's API shows it.

Kuma's proto kinds (Mesh, Dataplane, MeshGateway, Secret, ZoneIngress, ZoneEgress) put their
fields at the top level beside `type`, `mesh`, `name`, `creationTime`, `modificationTime`,
`labels` and `kri`; every other kind has `spec` and `status` (Kuma's rest/v1alpha1 marshaling).
Labels carry what Kuma's store adds to every resource: `kuma.io/mesh` on mesh-scoped kinds and
`kuma.io/proxy-type` on proxies (a label written in the resource wins). Not the origin, zone and
environment labels a Kuma zone adds: there is no federation here, and the KRIs of the whole API
(inspect, Envoy config) have an empty zone, as a resource without a `kuma.io/zone` label has. A Secret never shows its `data`, and key material written
inline in a resource (a provided CA's `key`, a MeshIdentity's `privateKey`, a client key, a
gateway's certificates, a Vault token) is replaced by `<redacted>`: reads here are open
(docs/api.md, "How it differs from Kuma").
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from reconciler.api.kuma.descriptors import KindDescriptor
from reconciler.inspection.kri import resource_kri
from reconciler.model import Resource
from reconciler.store import ResourceTime

__all__ = ["item_json", "kri_of", "rfc3339", "computed_labels", "proxy_type", "redact_inline", "REDACTED"]

_HIDDEN = {"Secret": ("data",)}
"""Fields never served: a Secret's bytes (Kuma shows them to admins only; reads here are open)."""

REDACTED = "<redacted>"
_KEY_FIELDS = frozenset({"key", "privateKey", "clientKey", "certificates", "token", "password"})
"""Fields whose data sources hold key material or credentials."""
_INLINE = frozenset({"inline", "inlineString", "insecureInline"})
"""A data source's fields that carry the data itself (not a reference to a Secret or a file)."""


def redact_inline(value: Any, *, under_key: bool = False) -> Any:
    """`value` with the inline data of every data source below a key-material field redacted."""
    if isinstance(value, Mapping):
        return {
            k: REDACTED if under_key and k in _INLINE else redact_inline(v, under_key=under_key or k in _KEY_FIELDS)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_inline(v, under_key=under_key) for v in value]
    return value


def rfc3339(ts: float) -> str:
    """As Go's time.Time marshals to JSON (RFC 3339, fractional seconds without trailing zeros)."""
    text = datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="microseconds")
    head, _, frac = text.removesuffix("+00:00").partition(".")
    frac = frac.rstrip("0")
    return f"{head}.{frac}Z" if frac else f"{head}Z"


def kri_of(descriptor: KindDescriptor, resource: Resource) -> str:
    """Kuma's resource identifier (reconciler/inspection/kri.py); none for a kind without a
    short name (Secret)."""
    return resource_kri(resource) if descriptor.short_name else ""


def proxy_type(resource: Resource) -> str:
    if resource.type == "ZoneIngress":
        return "zoneingress"
    if resource.type == "ZoneEgress":
        return "zoneegress"
    networking = resource.spec.get("networking")
    return "gateway" if isinstance(networking, Mapping) and networking.get("gateway") else "sidecar"


def computed_labels(descriptor: KindDescriptor, resource: Resource) -> dict[str, str]:
    """The resource's labels plus those Kuma's store computes on a Universal zone."""
    labels = dict(resource.labels)
    if not descriptor.global_scope:
        labels.setdefault("kuma.io/mesh", resource.mesh or "default")
    if resource.type in ("Dataplane", "ZoneIngress", "ZoneEgress"):
        labels["kuma.io/proxy-type"] = proxy_type(resource)
    return labels


def item_json(descriptor: KindDescriptor, resource: Resource, times: ResourceTime) -> dict[str, Any]:
    out: dict[str, Any] = {"type": resource.type}
    if not descriptor.global_scope:
        out["mesh"] = resource.mesh
    out["name"] = resource.name
    out["creationTime"] = rfc3339(times.created)
    out["modificationTime"] = rfc3339(times.modified)
    labels = computed_labels(descriptor, resource)
    if labels:
        out["labels"] = labels
    kri = kri_of(descriptor, resource)
    if kri:
        out["kri"] = kri
    hidden = _HIDDEN.get(resource.type, ())
    spec = redact_inline({k: v for k, v in resource.spec.items() if k not in hidden})
    if descriptor.flat:
        out.update(spec)
    else:
        out["spec"] = spec
        if resource.status:
            out["status"] = resource.status
    return out
