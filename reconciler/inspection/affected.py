"""The dataplanes a policy affects (Kuma's `/meshes/{mesh}/{policy}/{name}/_resources/dataplanes`,
`reconciler inspect <kind> NAME`): those its top-level targetRef selects, as Kuma matches them."""

from __future__ import annotations

from reconciler.mesh.model import Dataplane, MeshModel
from reconciler.model import Resource
from reconciler.policies.core.match import PolicyIndex, selects
from reconciler.views.proxy import policy_indexes

__all__ = ["affected_dataplanes"]


def affected_dataplanes(model: MeshModel, policy: Resource, index: PolicyIndex | None = None) -> list[Dataplane]:
    """In name order. `index`: the policy's mesh index when the caller has it (else built here)."""
    if index is None:
        index = policy_indexes(model).get(policy.mesh)
        if index is None:
            return []
    out = []
    for dp in model.dataplanes.values():
        if dp.mesh != policy.mesh:
            continue
        selection = selects(policy, dp, index)
        if selection.whole_proxy or selection.inbounds:
            out.append(dp)
    return sorted(out, key=lambda dp: dp.name)
