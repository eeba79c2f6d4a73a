"""Who a proxy is and whom it trusts: each mesh's CA, MeshIdentity SPIFFE ids per dataplane,
the ids each service's endpoints present (what an outbound cluster verifies with mTLS), and
the trust domains a proxy accepts. Computed once per model for all proxy views."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.ca.identity import Identity, identity_for
from reconciler.ca.provider import CertificateProvider, MeshTls, spiffe_id
from reconciler.mesh.model import MeshModel

__all__ = ["NODE", "mesh_tls", "workload_identities", "trust_domains", "service_identities"]


def mesh_tls(model: MeshModel, certs: CertificateProvider) -> dict[str, MeshTls | None]:
    """The CA each mesh signs with (None: mTLS off). Raises CaError for an unusable CA."""
    return {
        name: certs.mesh_tls(mesh.resource, model.secrets_of(name), model.identities, model.trusts) for name, mesh in model.meshes.items()
    }


def workload_identities(model: MeshModel) -> dict[str, Identity]:
    """Dataplanes (by node id) that a MeshIdentity gives their SPIFFE id."""
    out = {}
    for node_id, dp in model.dataplanes.items():
        identity = identity_for(dp, model.identities)
        if identity is not None:
            out[node_id] = identity
    return out


def trust_domains(model: MeshModel, identities: Mapping[str, Identity], mesh: str) -> tuple[str, ...]:
    """The mesh's own trust domain, its MeshIdentities' and its MeshTrusts'."""
    domains = {mesh} | {i.trust_domain for n, i in identities.items() if n.startswith(mesh + ".")}
    domains |= {str(t.spec.get("trustDomain")) for t in model.trusts if t.mesh == mesh and t.spec.get("trustDomain")}
    return tuple(sorted(domains))


NODE = "node:"


def service_identities(model: MeshModel, identities: Mapping[str, Identity]) -> dict[tuple[str, str], tuple[str, ...]]:
    """Per service (mesh, cluster name): the SPIFFE ids its endpoints present; and per
    dataplane with a MeshIdentity (mesh, "node:<name>"): its id."""
    out: dict[tuple[str, str], set[str]] = {}
    for node, identity in identities.items():
        mesh, _, name = node.partition(".")
        out[(mesh, NODE + name)] = {identity.spiffe_id}
    for service in model.services.values():
        ids = out.setdefault((service.mesh, service.cluster_name), set())
        for endpoint in service.endpoints:
            node = f"{service.mesh}.{endpoint.dataplane}"
            if node in identities:
                ids.add(identities[node].spiffe_id)
            else:
                ids.add(spiffe_id(service.mesh, endpoint.tags.get("kuma.io/service", service.name)))
    return {k: tuple(sorted(v)) for k, v in out.items()}
