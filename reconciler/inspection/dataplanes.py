"""Which dataplanes a resource reaches, as Kuma's inspect API lists them: those a policy's
top-level targetRef selects (`/meshes/{mesh}/{policies}/{name}/_resources/dataplanes`), those
a MeshService's selector picks (`/meshes/{mesh}/meshservices/{name}/_dataplanes`), and
Kuma's page of such a list (`total`, `items`, `next`; `size`, `offset`, `name`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.inspection.affected import affected_dataplanes
from reconciler.inspection.rules import UnknownResource
from reconciler.mesh.model import Dataplane, MeshModel
from reconciler.model import Resource
from reconciler.policies.defaults import with_default_policies

__all__ = ["policy_dataplanes", "meshservice_dataplanes", "dataplane_meta", "Page", "page", "find_policy", "DEFAULT_SIZE", "MAX_SIZE"]

DEFAULT_SIZE = 100
MAX_SIZE = 1000


def dataplane_meta(dp: Dataplane) -> dict[str, Any]:
    return {"type": "Dataplane", "mesh": dp.mesh, "name": dp.name, "labels": dict(dp.labels)}


def find_policy(model: MeshModel, mesh: str, kind: str, name: str) -> Resource:
    """The committed policy, or Kuma's default of that name that serving applies (the API lists
    both); UnknownResource for an unknown mesh or policy."""
    if mesh not in model.meshes:
        raise UnknownResource("Mesh", "", mesh)
    committed = [p for p in model.policies if p.mesh == mesh]
    for p in with_default_policies(model.meshes[mesh].resource, committed):
        if p.type == kind and p.name == name:
            return p
    raise UnknownResource(kind, mesh, name)


def policy_dataplanes(model: MeshModel, mesh: str, kind: str, name: str) -> list[Dataplane]:
    """The dataplanes the policy's top-level targetRef selects, by name."""
    return affected_dataplanes(model, find_policy(model, mesh, kind, name))


def meshservice_dataplanes(model: MeshModel, service: Resource) -> list[Dataplane]:
    """The dataplanes the MeshService's selector picks, as Kuma's MatchesDataplane does: by
    `dataplaneRef` name, by `dataplaneTags` (all of them on one inbound, or on a gateway), or
    by `dataplaneLabels`; healthy or not."""
    selector = service.spec.get("selector") or {}

    def picks(dp: Dataplane) -> bool:
        if selector.get("dataplaneRef") is not None:
            return bool(dp.name == (selector["dataplaneRef"] or {}).get("name"))
        if selector.get("dataplaneTags") is not None:
            wanted = {str(k): str(v) for k, v in selector["dataplaneTags"].items()}
            tag_sets = [i.tags for i in dp.inbounds] + ([(dp.gateway or {}).get("tags") or {}] if dp.gateway else [])
            return any(all(tags.get(k) == v for k, v in wanted.items()) for tags in tag_sets)
        if selector.get("dataplaneLabels") is not None:
            return all(dp.labels.get(str(k)) == str(v) for k, v in (selector["dataplaneLabels"] or {}).items())
        return False

    found = (dp for dp in model.dataplanes.values() if dp.mesh == service.mesh and picks(dp))
    return sorted(found, key=lambda dp: dp.name)


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    items: list[dict[str, Any]]
    next_offset: int | None
    """Where the next page starts (None: this is the last one)."""


def page(dataplanes: Sequence[Dataplane], size: int = DEFAULT_SIZE, offset: int = 0, name: str = "") -> Page:
    """Kuma's paging: the name filter is a substring; `total` counts what it kept."""
    kept = [dp for dp in dataplanes if name in dp.name]
    size = max(1, min(size, MAX_SIZE))
    chosen = kept[offset : offset + size]
    more = offset + size < len(kept)
    return Page(len(kept), [dataplane_meta(dp) for dp in chosen], offset + size if more else None)
