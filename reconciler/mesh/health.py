"""What a proxy's health checks said about its inbounds, and the Dataplane they leave behind.

Kuma's Universal service probes: the control plane hands each sidecar health checks over HDS
(reconciler/xds/hds.py), one TCP check per inbound with a `serviceProbe` plus one of Envoy's own
admin `/ready`, and the sidecar reports each endpoint's status back. Kuma then writes the
inbound's `state` (and `health.ready`) into the stored Dataplane; here the report is runtime
state kept beside the registrations (`Store.health`) and applied while the mesh model is built,
so an inbound reported unhealthy is not an endpoint of any service until it is healthy again.

Kuma's rule (pkg/hds/tracker/callbacks.go): an inbound whose workload port was checked is healthy
when that check and Envoy's own check are; an inbound without a check follows Envoy's alone.
A report only takes an inbound out: an inbound the Dataplane declares not ready stays so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.mesh.model import Dataplane, Inbound
from reconciler.model import Resource

__all__ = ["HealthReport", "with_health", "health_aware", "spec_with_health"]


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The last EndpointHealthResponse of one proxy."""

    ports: Mapping[int, bool] = field(default_factory=dict)
    """Workload port → healthy, for the inbounds whose service probe was reported."""
    envoy: bool = True
    """Envoy's own readiness (its admin `/ready`): false while it drains."""

    def healthy(self, workload_port: int) -> bool:
        return self.envoy and self.ports.get(workload_port, True)

    def to_json(self) -> dict[str, Any]:
        return {"envoy": self.envoy, "ports": {str(p): ok for p, ok in sorted(self.ports.items())}}


def with_health(dp: Dataplane, report: HealthReport | None) -> Dataplane:
    """`dp` with the inbounds the report finds unhealthy not ready (the same object when none changes)."""
    if report is None:
        return dp
    inbounds: list[Inbound] = []
    changed = False
    for inbound in dp.inbounds:
        if inbound.ready and not report.healthy(inbound.service_port):
            inbound = replace(inbound, ready=False)
            changed = True
        inbounds.append(inbound)
    return replace(dp, inbounds=tuple(inbounds)) if changed else dp


def health_aware(
    convert: Callable[[Resource, bool], Dataplane], health: Mapping[str, HealthReport]
) -> Callable[[Resource, bool], Dataplane]:
    """A `dataplane_of` for build_mesh_model that applies each proxy's report after `convert`."""
    if not health:
        return convert

    def of(resource: Resource, registered: bool) -> Dataplane:
        dp = convert(resource, registered)
        return with_health(dp, health.get(dp.node_id))

    return of


def spec_with_health(spec: Mapping[str, Any], report: HealthReport | None) -> Mapping[str, Any]:
    """A Dataplane spec as Kuma's store holds it after HDS: each inbound's `state` and `health.ready`
    written from the report (the spec itself when there is none)."""
    if report is None:
        return spec
    net = spec.get("networking")
    if not isinstance(net, Mapping) or not net.get("inbound"):
        return spec
    inbounds = []
    for raw in net.get("inbound") or ():
        if not isinstance(raw, Mapping):
            inbounds.append(raw)
            continue
        port = int(raw.get("servicePort") or raw.get("port") or 0)
        declared = raw.get("state") or "Ready"
        health = raw.get("health")
        declared_ready = declared == "Ready" and not (isinstance(health, Mapping) and health.get("ready") is False)
        ready = declared_ready and report.healthy(port)
        inbounds.append({**raw, "state": "Ready" if ready else "NotReady", "health": {"ready": ready}})
    return {**spec, "networking": {**net, "inbound": inbounds}}
