"""build_mesh_model (reconciler/mesh/model.py): dataplanes as the data plane sees them, and the
services their inbounds make, from small in-memory snapshots."""

from __future__ import annotations

from reconciler.mesh.model import MeshModel, build_mesh_model, mesh_service_cluster_name
from reconciler.mesh.secret_data import SECRET_DATA
from tests.support import snapshot_of_text


def model_of(text: str, registered: str = "") -> MeshModel:
    extra = snapshot_of_text(registered, add_meshes=False).resources if registered else ()
    return build_mesh_model(snapshot_of_text(text).resources, extra)


WEB = """\
type: Dataplane
mesh: default
name: web-1
networking:
  address: 10.0.0.1
  inbound:
    - port: 8080
      servicePort: 18080
      tags: {kuma.io/service: web, kuma.io/protocol: http}
  outbound:
    - port: 10001
      tags: {kuma.io/service: backend}
"""


def backend(name: str, address: str, *, state: str = "Ready", protocol: str = "http", mesh: str = "default") -> str:
    return f"""\
---
type: Dataplane
mesh: {mesh}
name: {name}
networking:
  address: {address}
  inbound:
    - port: 8080
      state: {state}
      tags: {{kuma.io/service: backend, kuma.io/protocol: {protocol}, version: v1}}
"""


def test_dataplane_defaults_follow_kuma_universal() -> None:
    model = model_of(WEB)
    dp = model.dataplanes["default.web-1"]
    inbound, outbound = dp.inbounds[0], dp.outbounds[0]
    assert (inbound.address, inbound.port, inbound.service_address, inbound.service_port) == ("10.0.0.1", 8080, "10.0.0.1", 18080)
    assert (inbound.service, inbound.protocol, inbound.ready) == ("web", "http", True)
    assert (outbound.address, outbound.port, outbound.service, outbound.backend_ref) == ("127.0.0.1", 10001, "backend", None)
    assert dp.admin_port == 9901 and not dp.registered


def test_services_collect_ready_endpoints_sorted_and_take_the_first_protocol() -> None:
    model = model_of(
        WEB + backend("backend-2", "10.0.0.3") + backend("backend-1", "10.0.0.2") + backend("backend-3", "10.0.0.4", state="NotReady")
    )
    service = model.services[("default", "backend")]
    assert [(e.address, e.dataplane) for e in service.endpoints] == [("10.0.0.2", "backend-1"), ("10.0.0.3", "backend-2")]
    assert service.protocol == "http" and service.cluster_name == "backend"


def test_a_service_whose_inbounds_are_all_not_ready_exists_without_endpoints() -> None:
    model = model_of(WEB + backend("backend-1", "10.0.0.2", state="NotReady"))
    assert model.services[("default", "backend")].endpoints == ()


def test_unknown_protocols_are_tcp() -> None:
    model = model_of(WEB + backend("backend-1", "10.0.0.2", protocol="carrier-pigeon"))
    assert model.services[("default", "backend")].protocol == "tcp"


def test_resources_of_a_mesh_that_is_not_defined_are_left_out() -> None:
    model = build_mesh_model(snapshot_of_text(WEB + backend("b-1", "10.0.0.9", mesh="other"), add_meshes=False).resources)
    assert model.dataplanes == {} and model.meshes == {}


def test_dataplanes_are_kept_apart_by_mesh() -> None:
    model = model_of(WEB + backend("backend-1", "10.0.0.2", mesh="other"))
    assert set(model.dataplanes) == {"default.web-1", "other.backend-1"}
    assert ("default", "backend") not in model.services
    assert model.services[("other", "backend")].endpoints[0].address == "10.0.0.2"


def test_git_wins_over_a_registered_dataplane_of_the_same_name() -> None:
    registered = WEB.replace("10.0.0.1", "10.9.9.9") + backend("backend-1", "10.0.0.2")
    model = model_of(WEB, registered=registered)
    assert model.dataplanes["default.web-1"].address == "10.0.0.1" and not model.dataplanes["default.web-1"].registered
    assert model.dataplanes["default.backend-1"].registered


def test_mesh_service_ports_select_inbounds_by_tags_and_target_port() -> None:
    text = (
        WEB
        + backend("backend-1", "10.0.0.2")
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
    - port: 81
      targetPort: 9999
"""
    )
    model = model_of(text)
    first, second = model.services[("default", "msvc:backend:80")], model.services[("default", "msvc:backend:81")]
    assert first.cluster_name == mesh_service_cluster_name("default", "backend", 80) == "default_backend___msvc_80"
    assert [e.dataplane for e in first.endpoints] == ["backend-1"] and first.protocol == "http"
    assert second.endpoints == () and second.protocol == "tcp"
    dp_outbound = model.dataplanes["default.web-1"].outbounds[0]
    assert model.service_for(model.dataplanes["default.web-1"], dp_outbound) is model.services[("default", "backend")]


def test_policies_gateways_secrets_and_external_services_are_sorted_out_by_type() -> None:
    text = (
        WEB
        + """\
---
type: MeshTimeout
mesh: default
name: t
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default: {connectionTimeout: 2s}
---
type: Secret
mesh: default
name: ca
data: aGVsbG8=
---
type: MeshExternalService
mesh: default
name: payments
spec:
  match: {type: HostnameGenerator, port: 443, protocol: tcp}
  endpoints:
    - address: payments.example.com
      port: 443
  tls:
    enabled: true
    verification:
      caCert: {secret: ca}
"""
    )
    model = model_of(text)
    assert [p.name for p in model.policies] == ["t"]
    assert set(model.secrets) == {("default", "ca")}
    spec = model.external_specs("default")["payments"]
    assert spec["tls"]["verification"]["caCert"][SECRET_DATA] == b"hello"
