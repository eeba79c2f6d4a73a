"""MeshExternalService as the data plane sees it: which one an outbound names, its cluster,
and the Secret bytes its TLS settings need.

A Dataplane outbound written with `backendRef: {kind: MeshExternalService, name, port}` (Kuma
Universal) targets the MeshExternalService `name` of its mesh. Its traffic goes to the
cluster `<mesh>_<name>___extsvc_<match.port>` (Kuma's legacy name) and speaks the service's
`match.protocol` (default tcp). The `port` of the backendRef is only used when the
MeshExternalService does not exist (the outbound then gets a cluster without endpoints).

Secrets named by `tls.verification.caCert` / `clientCert` / `clientKey` are resolved here,
before generation, so the Envoy config stays a pure function of the proxy's view and a
changed Secret regenerates exactly the proxies that use it: the data source gains the decoded
bytes under `SECRET_DATA`. A Secret that does not exist leaves the data source as written,
and the generator fails closed (see reconciler/xds/generate/external.py).
"""

from __future__ import annotations

from reconciler.frozen import FrozenDict
from reconciler.mesh.model import Dataplane, MeshModel, Outbound
from reconciler.mesh.routing import BackendCluster
from reconciler.mesh.secret_data import DATA_SOURCES, SECRET_DATA, with_secret_data

__all__ = ["DATA_SOURCES", "SECRET_DATA", "external_cluster_name", "external_backend", "with_secret_data"]


def external_cluster_name(mesh: str, name: str, port: int) -> str:
    """Kuma's legacy name for a MeshExternalService: `<mesh>_<name>_<namespace>_<zone>_extsvc_<port>`."""
    return f"{mesh}_{name}___extsvc_{port}"


def external_backend(model: MeshModel, dp: Dataplane, outbound: Outbound) -> BackendCluster | None:
    """The MeshExternalService cluster an outbound's `backendRef` names (None: it names none)."""
    if outbound.backend_ref is None or outbound.backend_ref[0] != "MeshExternalService":
        return None
    _, name, port = outbound.backend_ref
    spec = model.external_specs(dp.mesh).get(name)
    match = (spec or {}).get("match") or {}
    number = int(match.get("port") or port or 0)
    protocol = str(match.get("protocol") or "tcp")
    return BackendCluster(external_cluster_name(dp.mesh, name, number), name, protocol, (), FrozenDict(), (), spec)
