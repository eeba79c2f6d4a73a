"""The registry of resource kinds a Kuma Universal control plane stores.

Each kind lives in its own module exporting `KIND`: core kinds in `reconciler.kinds.<kind>`
(adding one is one line in `CORE_KINDS`), targetRef policies in
`reconciler.policies.<kind>.validation`, listed in their ordered registry
(reconciler.policies.registry).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from reconciler.kind import Kind
from reconciler.kinds import (
    dataplane,
    hostnamegenerator,
    mesh,
    meshexternalservice,
    meshgateway,
    meshidentity,
    meshmultizoneservice,
    meshopentelemetrybackend,
    meshservice,
    meshtrust,
    secret,
    workload,
    zoneegress,
    zoneingress,
)
from reconciler.policies.registry import policy_kinds

__all__ = ["Kind", "all_kinds", "get_kind", "kind_names"]

CORE_KINDS: tuple[Kind, ...] = (
    # Kuma's proto kinds: fields at the top level of the document.
    mesh.KIND,
    dataplane.KIND,
    meshgateway.KIND,
    zoneingress.KIND,
    zoneegress.KIND,
    secret.KIND,
    # New-style kinds with `spec`.
    meshservice.KIND,
    meshexternalservice.KIND,
    meshmultizoneservice.KIND,
    hostnamegenerator.KIND,
    meshidentity.KIND,
    meshtrust.KIND,
    workload.KIND,
    meshopentelemetrybackend.KIND,
)


@cache
def all_kinds() -> Mapping[str, Kind]:
    return {kind.name: kind for kind in (*CORE_KINDS, *policy_kinds())}


def get_kind(name: str) -> Kind | None:
    return all_kinds().get(name)


def kind_names() -> list[str]:
    return sorted(all_kinds())
