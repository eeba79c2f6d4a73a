"""Kuma's default policies: what a new mesh gets unless `skipCreatingInitialPolicies` says no.

Kuma creates them in its store when a Mesh is created (`mesh-timeout-all-<mesh>`,
`mesh-circuit-breaker-all-<mesh>`, `mesh-retry-all-<mesh>`, `mesh-gateways-timeout-all-<mesh>`).
Here git is the store, so they are added to each mesh at reconcile time, with Kuma's names:
committing a policy of the same name replaces the default, and listing its kind (or "*") in
the Mesh's `skipCreatingInitialPolicies` removes it. Each policy's own defaults are in its
`<kind>/defaults.py`; this module gathers them, in the registry's order, through the plugins.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model import Resource
from reconciler.policies.plugins import plugins

__all__ = ["default_policies", "with_default_policies"]


def default_policies(mesh: Resource) -> list[Resource]:
    skipped = set(mesh.spec.get("skipCreatingInitialPolicies") or ())
    if "*" in skipped:
        return []
    out: list[Resource] = []
    for plugin in plugins():
        if plugin.defaults is not None and plugin.kind not in skipped:
            out.extend(plugin.defaults(mesh.name))
    return out


def with_default_policies(mesh: Resource, committed: Iterable[Resource]) -> list[Resource]:
    committed = list(committed)
    taken = {(r.type, r.name) for r in committed}
    return committed + [d for d in default_policies(mesh) if (d.type, d.name) not in taken]
