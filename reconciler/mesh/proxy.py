"""ProxyView: everything the Envoy config of one dataplane depends on, and nothing more.

Generation is a pure function of a ProxyView, so two equal views give equal config: the
reconciler compares a proxy's new view with the previous one and regenerates only when they
differ, and identical pieces (a service's cluster and endpoints) are generated once for all
proxies that use them.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.mesh.model import Dataplane, MeshInfo, MeshModel, Outbound, Service, mesh_service_cluster_name

__all__ = ["OutboundView", "ProxyView", "proxy_view", "proxy_views"]


@dataclass(frozen=True, slots=True)
class OutboundView:
    outbound: Outbound
    service_name: str
    cluster_name: str
    service: Service | None
    """None when nothing in the mesh provides the service yet (the listener still exists)."""

    @property
    def protocol(self) -> str:
        return self.service.protocol if self.service is not None else "tcp"


@dataclass(frozen=True, slots=True)
class ProxyView:
    dataplane: Dataplane
    mesh: MeshInfo
    outbounds: tuple[OutboundView, ...]

    @property
    def node_id(self) -> str:
        return self.dataplane.node_id


def _outbound_view(model: MeshModel, dp: Dataplane, o: Outbound) -> OutboundView:
    service = model.service_for(dp, o)
    if service is not None:
        return OutboundView(o, service.name, service.cluster_name, service)
    if o.backend_ref is not None:
        _, name, port = o.backend_ref
        return OutboundView(o, name, mesh_service_cluster_name(dp.mesh, name, port), None)
    return OutboundView(o, o.service, o.service, None)


def proxy_view(model: MeshModel, node_id: str) -> ProxyView | None:
    dp = model.dataplanes.get(node_id)
    mesh = model.meshes.get(dp.mesh) if dp is not None else None
    if dp is None or mesh is None:
        return None
    return ProxyView(dp, mesh, tuple(_outbound_view(model, dp, o) for o in dp.outbounds))


def proxy_views(model: MeshModel) -> dict[str, ProxyView]:
    views = (proxy_view(model, node_id) for node_id in model.dataplanes)
    return {v.node_id: v for v in views if v is not None}
