"""Backend resolution (reconciler/mesh/routing.py) and the outbound shape choice
(reconciler/mesh/shape.py): which cluster a `backendRef` names and with which endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from reconciler.frozen import FrozenDict
from reconciler.mesh.model import Endpoint, MeshModel, build_mesh_model
from reconciler.mesh.routing import resolve_backend, subset_cluster_name
from reconciler.mesh.shape import SHAPE_LABEL, outbound_shape
from tests.support import snapshot_of_text


def backend(name: str, address: str, version: str) -> str:
    return f"""\
---
type: Dataplane
mesh: default
name: {name}
networking:
  address: {address}
  inbound:
    - port: 8080
      tags: {{kuma.io/service: backend, kuma.io/protocol: http, version: {version}}}
"""


MODEL_TEXT = (
    backend("backend-1", "10.0.0.1", "v1")
    + backend("backend-2", "10.0.0.2", "v2")
    + """\
---
type: MeshService
mesh: default
name: backend
spec:
  selector:
    dataplaneTags: {kuma.io/service: backend}
  ports:
    - port: 80
      targetPort: 8080
      appProtocol: http
"""
)


@pytest.fixture(scope="module")
def model() -> MeshModel:
    return build_mesh_model(snapshot_of_text(MODEL_TEXT).resources)


def confs_for(service: str) -> Mapping[str, Mapping[str, Any]]:
    return FrozenDict({"MeshTimeout": FrozenDict({"for": service})})


def identities_for(service: str, endpoints: tuple[Endpoint, ...]) -> tuple[str, ...]:
    return tuple(f"spiffe://default/{service}/{e.dataplane}" for e in endpoints)


def resolve(model: MeshModel, ref: Mapping[str, Any], externals: Mapping[str, Any] | None = None) -> Any:
    return resolve_backend(model, "default", ref, confs_for, identities_for, externals)


def test_a_mesh_service_by_name_is_the_kuma_service_cluster(model: MeshModel) -> None:
    name, cluster = resolve(model, {"kind": "MeshService", "name": "backend"})
    assert name == "backend"
    assert cluster.protocol == "http"
    assert [e.dataplane for e in cluster.endpoints] == ["backend-1", "backend-2"]
    assert cluster.confs == {"MeshTimeout": {"for": "backend"}}
    assert cluster.identities == ("spiffe://default/backend/backend-1", "spiffe://default/backend/backend-2")


def test_the_kind_defaults_to_mesh_service(model: MeshModel) -> None:
    assert resolve(model, {"name": "backend"})[0] == "backend"


def test_a_mesh_service_with_a_port_is_the_real_mesh_service_port(model: MeshModel) -> None:
    name, cluster = resolve(model, {"kind": "MeshService", "name": "backend", "port": 80})
    assert name == "default_backend___msvc_80"
    assert cluster.service_name == "backend" and len(cluster.endpoints) == 2


def test_a_subset_gets_its_own_cluster_with_the_matching_endpoints_only(model: MeshModel) -> None:
    name, cluster = resolve(model, {"kind": "MeshServiceSubset", "name": "backend", "tags": {"version": "v2"}})
    assert name == subset_cluster_name("backend", {"version": "v2"}) != subset_cluster_name("backend", {"version": "v1"})
    assert name.startswith("backend-")
    assert [e.dataplane for e in cluster.endpoints] == ["backend-2"]
    assert cluster.identities == ("spiffe://default/backend/backend-2",)


def test_subset_names_do_not_depend_on_tag_order() -> None:
    assert subset_cluster_name("s", {"a": "1", "b": "2"}) == subset_cluster_name("s", {"b": "2", "a": "1"})


def test_an_unknown_service_is_a_tcp_cluster_without_endpoints(model: MeshModel) -> None:
    name, cluster = resolve(model, {"kind": "MeshService", "name": "ghost"})
    assert (name, cluster.protocol, cluster.endpoints) == ("ghost", "tcp", ())


def test_a_mesh_external_service_is_its_extsvc_cluster_with_its_spec(model: MeshModel) -> None:
    spec = {"match": {"port": 443, "protocol": "http"}}
    name, cluster = resolve(model, {"kind": "MeshExternalService", "name": "payments"}, {"payments": spec})
    assert name == "default_payments___extsvc_443"
    assert (cluster.protocol, cluster.endpoints, cluster.external) == ("http", (), spec)


def test_a_missing_mesh_external_service_still_names_a_cluster(model: MeshModel) -> None:
    name, cluster = resolve(model, {"kind": "MeshExternalService", "name": "gone"}, {})
    assert name == "default_gone___extsvc_0" and cluster.protocol == "tcp" and cluster.external is None


@pytest.mark.parametrize(
    ("labels", "outbounds", "compact_from", "shape", "reason"),
    [
        ({}, 5, None, "kuma", "the default"),
        ({}, 5, 5, "compact", "5 outbounds, at least --compact-outbounds 5"),
        ({}, 4, 5, "kuma", "the default"),
        ({}, 0, 0, "kuma", "the default"),  # nothing to shape
        ({SHAPE_LABEL: "compact"}, 1, None, "compact", f"label {SHAPE_LABEL}: compact"),
        ({SHAPE_LABEL: "kuma"}, 50, 5, "kuma", f"label {SHAPE_LABEL}: kuma"),  # the label wins over the threshold
        ({SHAPE_LABEL: "weird"}, 50, 5, "compact", "50 outbounds, at least --compact-outbounds 5"),  # unknown label: ignored
    ],
)
def test_outbound_shape(labels: dict[str, str], outbounds: int, compact_from: int | None, shape: str, reason: str) -> None:
    choice = outbound_shape(labels, outbounds, compact_from)
    assert (choice.shape, choice.reason) == (shape, reason)
