"""Outbound destinations as policies see them, and which `to[].targetRef` names one.

A destination is either a `kuma.io/service` name (Kuma's legacy outbounds, matched by name
only) or a real resource: one port of a MeshService, a MeshExternalService or a
MeshMultiZoneService (Kuma's resource rules, pkg/plugins/policies/core/rules/resolve). For a
real resource, Kuma v2.14 resolves a `to` reference like this:

- `labels` (when not empty) select every resource of the kind whose labels include them; the
  `name` is then not looked at;
- otherwise `name` names one resource;
- `sectionName` then picks one port of a MeshService by the port's *name*, which is the
  port number written out when the port has no name (Kuma's `Port.GetName`): a port named
  `http` is not matched by `sectionName: "80"`.

`MeshHTTPRoute` references name a route, never a destination: they configure the routes
that route produced (reconciler/policies/core/route_rules.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.frozen import FrozenDict
from reconciler.policies.core import namespace

__all__ = ["Destination", "DISPLAY_NAME_LABEL", "labels_select", "to_matches", "refers_to_route"]

DISPLAY_NAME_LABEL = "kuma.io/display-name"


@dataclass(frozen=True, slots=True)
class Destination:
    """An outbound destination as policies see it."""

    service: str
    """The `kuma.io/service` name, or the name of the real resource."""
    kind: Literal["service", "MeshService", "MeshExternalService", "MeshMultiZoneService"] = "service"
    port: int = 0
    port_name: str = ""
    """The MeshService port's name (empty: the port has none, its number stands for it)."""
    labels: Mapping[str, str] = field(default_factory=FrozenDict)
    """The real resource's labels, which `to[].targetRef.labels` select on."""


def labels_select(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kuma's label selection: every selector pair is among the resource's labels."""
    return all(labels.get(k) == v for k, v in selector.items())


def _names(ref: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    selector = ref.get("labels")
    if selector:
        return labels_select(selector, labels)
    # A real resource: `name.namespace` when a namespace applies (Kubernetes form).
    return namespace.ref_core_name(ref) == name


def to_matches(ref: Mapping[str, Any], dest: Destination) -> bool:
    """Whether a `to` entry's targetRef covers `dest` (Mesh covers every destination)."""
    kind = ref.get("kind", "Mesh")
    if kind == "Mesh":
        return True
    if kind == "MeshService":
        if dest.kind == "service":
            # Legacy rules turn the ref into the tag `kuma.io/service: <name>`: no labels, no section.
            return ref.get("name") == dest.service and not ref.get("sectionName")
        if dest.kind != "MeshService" or not _names(ref, dest.service, dest.labels):
            return False
        section = ref.get("sectionName")
        return not section or section == (dest.port_name or str(dest.port))
    if kind in ("MeshExternalService", "MeshMultiZoneService"):
        return dest.kind == kind and _names(ref, dest.service, dest.labels)
    return False


def refers_to_route(ref: Mapping[str, Any], route: str, route_labels: Mapping[str, str]) -> bool:
    """Whether a `to` entry's targetRef names the MeshHTTPRoute `route` (by name or labels)."""
    return ref.get("kind") == "MeshHTTPRoute" and _names(ref, route, route_labels)
