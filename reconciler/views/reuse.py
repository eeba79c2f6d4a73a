"""Which proxy views of the last build still hold for a new mesh model.

A sidecar's view is a function of: its Dataplane; its mesh (the Mesh resource, its policies
with Kuma's defaults, gateways, secrets, MeshIdentities, MeshTrusts, MeshExternalServices, the
mesh CA, the SPIFFE ids of its services); the Service each outbound targets (with its endpoints);
its certificate; and serve's --compact-outbounds. A transparent proxy's also depends on its
mesh's virtual outbounds and DNS records (views/transparent.py). When all of those equal what the last build
saw, its last view is the answer and building it again would give an equal one — at 10,000
proxies that is most of the cost of a commit that changes one file.

The test of "equal" is kept conservative: builtin gateways, and meshes with MeshHTTPRoutes or
MeshTCPRoutes (whose backends pull in other services' endpoints), are always built again.
Each pair of shared parts (a mesh's context, a Service) is compared once per build.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.ca.provider import MeshTls, ProxyTls
from reconciler.mesh.model import Dataplane, MeshModel, Outbound, Service
from reconciler.views.transparent import transparent_dns, transparent_outbounds

__all__ = ["ViewBasis", "Reuse", "Reuser"]

_ROUTES = frozenset({"MeshHTTPRoute", "MeshTCPRoute"})

Ids = Mapping[tuple[str, str], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class ViewBasis:
    """What the views of one build were computed from, and those views."""

    model: MeshModel
    tls: Mapping[str, MeshTls | None]
    ids: Ids
    compact_from: int | None
    views: Mapping[str, Any]
    """node id → ProxyView."""


Reuser = Callable[[Dataplane, ProxyTls | None], Any]
"""(the dataplane, its new certificate) → its last view when still valid, else None."""


class Reuse:
    """Carries the basis of the last build to the next (the server's Engine holds one)."""

    def __init__(self) -> None:
        self.last: ViewBasis | None = None

    def reuser(self, model: MeshModel, tls: Mapping[str, MeshTls | None], ids: Ids, compact_from: int | None) -> Reuser | None:
        last = self.last
        if last is None or last.compact_from != compact_from:
            return None
        return _Reuser(last, model, tls, ids).view


class _Reuser:
    def __init__(self, last: ViewBasis, model: MeshModel, tls: Mapping[str, MeshTls | None], ids: Ids) -> None:
        self.last, self.model, self.tls, self.ids = last, model, tls, ids
        self._meshes: dict[str, bool] = {}
        self._services: dict[tuple[int, int], bool] = {}

    def view(self, dp: Dataplane, proxy_tls: ProxyTls | None) -> Any:
        old = self.last.views.get(dp.node_id)
        if old is None or dp.gateway is not None or not self._mesh_same(dp.mesh):
            return None
        if old.tls != proxy_tls or not (old.dataplane is dp or old.dataplane == dp):
            return None
        outbounds: tuple[Outbound, ...] = dp.outbounds
        if dp.redirect is not None:
            # A transparent proxy's outbounds also come from its mesh's VIPs, and its DNS records
            # from the mesh's names: both are computed again (cheap next to a view) and compared.
            outbounds = transparent_outbounds(self.model, dp)
            if tuple(v.outbound for v in old.outbounds) != outbounds or old.dns != transparent_dns(self.model, dp, outbounds):
                return None
        for o in outbounds:
            if not self._service_same(self.last.model.service_for(dp, o), self.model.service_for(dp, o)):
                return None
        return old

    def _mesh_same(self, mesh: str) -> bool:
        same = self._meshes.get(mesh)
        if same is None:
            same = self._meshes[mesh] = _context(self.last.model, self.last.tls, self.last.ids, mesh) == _context(
                self.model, self.tls, self.ids, mesh
            ) and not any(p.mesh == mesh and p.type in _ROUTES for p in self.model.policies)
        return same

    def _service_same(self, a: Service | None, b: Service | None) -> bool:
        if a is b:
            return True
        if a is None or b is None:
            return False
        key = (id(a), id(b))  # both models are alive while this answer is used
        same = self._services.get(key)
        if same is None:
            same = self._services[key] = a == b
        return same


def _context(model: MeshModel, tls: Mapping[str, MeshTls | None], ids: Ids, mesh: str) -> tuple[Any, ...]:
    """Everything of a mesh that a sidecar's view may read, besides its own Dataplane and services."""

    def of(resources: Any) -> tuple[Any, ...]:
        return tuple(r for r in resources if r.mesh == mesh)

    return (
        model.meshes.get(mesh),
        of(model.policies),
        of(model.gateways),
        {k: r for k, r in model.secrets.items() if k[0] == mesh},
        of(model.identities),
        of(model.trusts),
        of(model.externals),
        tls.get(mesh),
        {k: v for k, v in ids.items() if k[0] == mesh},
    )
