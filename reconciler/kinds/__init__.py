"""The registry of resource kinds a Kuma Universal control plane stores.

Each kind lives in its own module exporting `KIND`: core kinds in `reconciler.kinds.<kind>`
(adding one is one line in `_MODULES`), targetRef policies in
`reconciler.policies.<kind>.validation`, listed in their ordered registry
(reconciler.policies.registry).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache

from reconciler.kinds.base import Kind

__all__ = ["Kind", "all_kinds", "get_kind", "kind_names"]

_MODULES = (
    # Kuma's proto kinds: fields at the top level of the document.
    "reconciler.kinds.mesh",
    "reconciler.kinds.dataplane",
    "reconciler.kinds.meshgateway",
    "reconciler.kinds.zoneingress",
    "reconciler.kinds.zoneegress",
    "reconciler.kinds.secret",
    # New-style kinds with `spec`.
    "reconciler.kinds.meshservice",
    "reconciler.kinds.meshexternalservice",
    "reconciler.kinds.meshmultizoneservice",
    "reconciler.kinds.hostnamegenerator",
    "reconciler.kinds.meshidentity",
    "reconciler.kinds.meshtrust",
    "reconciler.kinds.workload",
    "reconciler.kinds.meshopentelemetrybackend",
)


@cache
def all_kinds() -> Mapping[str, Kind]:
    kinds: dict[str, Kind] = {}
    for module_name in _MODULES:
        kind: Kind = importlib.import_module(module_name).KIND
        kinds[kind.name] = kind
    # Imported on first use: the policies' validation modules import reconciler.kinds.base
    # and reconciler.validate, which imports this package.
    from reconciler.policies.registry import policy_kinds

    for kind in policy_kinds():
        kinds[kind.name] = kind
    return kinds


def get_kind(name: str) -> Kind | None:
    return all_kinds().get(name)


def kind_names() -> list[str]:
    return sorted(all_kinds())
