"""The `status` Kuma writes into a MeshService, MeshExternalService or MeshMultiZoneService:
its VIP and the hostnames HostnameGenerators gave it (reconciler/mesh/vips.py).

Kuma's field names (pkg/core/resources/apis/*/api/v1alpha1): `vips: [{ip}]` on MeshService and
MeshMultiZoneService, `vip: {ip}` on MeshExternalService; `addresses: [{hostname, origin,
hostnameGeneratorRef: {coreName}}]` and `hostnameGenerators: [{hostnameGeneratorRef,
conditions}]` on all three. Here they come from the served commit's mesh model and replace
those keys of a `status` written in git.
"""

from __future__ import annotations

from typing import Any

from reconciler.mesh.model import MeshModel
from reconciler.model import Resource

__all__ = ["address_status"]


def address_status(model: MeshModel | None, resource: Resource) -> dict[str, Any] | None:
    """The resource's status with its addresses; None when the model gives it none."""
    found = model.addresses.get((resource.type, resource.mesh, resource.name)) if model is not None else None
    if found is None:
        return None
    status: dict[str, Any] = dict(resource.status or {})
    if resource.type == "MeshExternalService":
        status["vip"] = {"ip": found.vip}
    else:
        status["vips"] = [{"ip": found.vip}]
    addresses = [
        {"hostname": a.hostname, "origin": "HostnameGenerator", "hostnameGeneratorRef": {"coreName": a.generator}}
        for a in found.hostnames.addresses
    ]
    if addresses:
        status["addresses"] = addresses
    generators = [
        {
            "hostnameGeneratorRef": {"coreName": s.generator},
            "conditions": [{"type": "Generated", "status": s.status, "reason": s.reason, "message": s.message}],
        }
        for s in found.hostnames.statuses
    ]
    if generators:
        status["hostnameGenerators"] = generators
    return status
