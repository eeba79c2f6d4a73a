"""Every resource Kuma's API lists, as Kuma's store would hold it: the applied commit's
resources, the dataplanes registered at connect time (not in git) with the health their
sidecars report (`inbound[].state`, `health.ready`, as Kuma's HDS writes them), and Kuma's default
policies of each mesh that serving applies (policies/defaults.py), which Kuma creates in its
store with the mesh.

Items are ordered as Kuma's store lists them: by name, then mesh.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace

from reconciler.mesh.health import spec_with_health
from reconciler.model import Resource
from reconciler.policies.defaults import default_policies
from reconciler.store import ResourceTime, Store
from reconciler.types import ResourceKey

__all__ = ["Catalog", "catalog_of", "times_of"]


@dataclass(frozen=True, slots=True)
class Catalog:
    by_kind: Mapping[str, tuple[Resource, ...]]
    defaults: frozenset[ResourceKey]
    """Kuma's default policies added here (not committed)."""
    registered: frozenset[ResourceKey]
    """Dataplanes registered at connect time."""

    def of(self, kind: str, mesh: str = "") -> list[Resource]:
        items = self.by_kind.get(kind, ())
        return [r for r in items if r.mesh == mesh] if mesh else list(items)

    def get(self, kind: str, mesh: str, name: str) -> Resource | None:
        return next((r for r in self.by_kind.get(kind, ()) if r.mesh == mesh and r.name == name), None)

    def meshes(self) -> set[str]:
        return {r.name for r in self.by_kind.get("Mesh", ())}

    def count(self) -> dict[str, int]:
        return {kind: len(items) for kind, items in self.by_kind.items() if items}


def catalog_of(store: Store) -> Catalog:
    applied = store.applied
    if applied is None:
        return Catalog({}, frozenset(), frozenset())
    seen: dict[ResourceKey, Resource] = {}
    for r in applied.snapshot.resources:
        seen.setdefault(r.key, r)  # a duplicate is rejected by validation; the first file wins as in the model
    registered = set()
    for r in store.registered.values():
        if r.key not in seen:  # git wins over a registration of the same name
            seen[r.key] = r
            registered.add(r.key)
    for node_id, report in store.health.items():  # Kuma's HDS writes each inbound's health into the stored Dataplane
        dp_mesh, _, dp_name = node_id.partition(".")
        found = seen.get(ResourceKey("Dataplane", dp_mesh, dp_name))
        if found is not None:
            seen[found.key] = replace(found, spec=spec_with_health(found.spec, report))
    defaults = set()
    for mesh in [r for r in seen.values() if r.type == "Mesh"]:
        for policy in default_policies(mesh):
            if policy.key not in seen:  # a committed policy of that name replaces Kuma's default
                seen[policy.key] = policy
                defaults.add(policy.key)
    by_kind: dict[str, list[Resource]] = defaultdict(list)
    for r in seen.values():
        by_kind[r.type].append(r)
    ordered = {kind: tuple(sorted(items, key=lambda r: (r.name, r.mesh))) for kind, items in by_kind.items()}
    return Catalog(ordered, frozenset(defaults), frozenset(registered))


def times_of(store: Store, catalog: Catalog, resource: Resource) -> ResourceTime:
    """Kuma's creationTime and modificationTime: a default policy has its mesh's creation time
    (Kuma creates it with the mesh, and it never changes)."""
    if resource.key in catalog.defaults:
        mesh = catalog.get("Mesh", "", resource.mesh)
        if mesh is not None:
            created = store.time_of(mesh).created
            return ResourceTime(created, created, resource.digest)
    return store.time_of(resource)
