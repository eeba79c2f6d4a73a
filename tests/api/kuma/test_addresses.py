"""MeshService, MeshExternalService and MeshMultiZoneService in Kuma's API carry the VIP and the
hostnames the control plane gave them (`status.vips`/`status.vip`, `status.addresses`,
`status.hostnameGenerators`), on a real `reconciler serve`; the VIPs are what `plan` derives
from the same commit, are kept in the state directory, and survive a restart."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from reconciler.mesh.model import build_mesh_model
from reconciler.source.git import GitSource
from tests.api.support import request
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess
from tests.support import HTTPBIN_EXTERNAL, dataplane_yaml, mesh

RESOURCES = (
    """\
type: MeshService
mesh: default
name: billing
labels: {team: payments}
spec:
  selector: {dataplaneTags: {kuma.io/service: billing}}
  ports: [{port: 8080, targetPort: 9100, appProtocol: http}]
---
"""
    + HTTPBIN_EXTERNAL
    + """---
type: MeshMultiZoneService
mesh: default
name: all-billing
spec:
  selector: {meshService: {matchLabels: {team: payments}}}
  ports: [{port: 8080, appProtocol: http}]
---
type: HostnameGenerator
name: by-team
spec:
  selector:
    meshService: {matchLabels: {team: payments}}
  template: '{{ .Name }}.{{ label "team" }}.internal'
"""
)
ORDERS = """\
type: MeshService
mesh: default
name: orders
spec:
  selector: {dataplaneTags: {kuma.io/service: orders}}
  ports: [{port: 80}]
"""


def get(cp: ControlPlaneProcess, path: str) -> Any:
    reply = request(cp.api, "GET", path)
    assert reply.status == 200, f"GET {path}: {reply.status} {reply.body[:300]!r}"
    return reply.json()


def test_status_carries_vips_and_hostnames_that_survive_a_restart(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    first = remote.push(
        {"mesh.yaml": mesh(), "billing-dp.yaml": dataplane_yaml("billing-1", "billing", 19100, 9100), "services.yaml": RESOURCES}
    )
    state = tmp_path / "state"
    cp = ControlPlaneProcess(remote.bare, state, dataplane_auth=False, xds_tls=False)
    cp.start()
    try:
        cp.wait_applied(first)
        billing = get(cp, "/meshes/default/meshservices/billing")["status"]
        httpbin = get(cp, "/meshes/default/meshexternalservices/httpbin")["status"]
        everywhere = get(cp, "/meshes/default/meshmultizoneservices/all-billing")["status"]
        listed = get(cp, "/meshes/default/meshservices")["items"]
    finally:
        cp.stop()
    vip = billing["vips"][0]["ip"]
    assert ipaddress.IPv4Address(vip) in ipaddress.IPv4Network("241.0.0.0/8")
    assert billing["addresses"] == [
        {"hostname": "billing.payments.internal", "origin": "HostnameGenerator", "hostnameGeneratorRef": {"coreName": "by-team"}},
        {
            "hostname": "billing.svc.mesh.local",
            "origin": "HostnameGenerator",
            "hostnameGeneratorRef": {"coreName": "local-universal-mesh-service"},
        },
    ]
    assert billing["hostnameGenerators"][0] == {
        "hostnameGeneratorRef": {"coreName": "by-team"},
        "conditions": [{"type": "Generated", "status": "True", "reason": "Generated", "message": ""}],
    }
    assert next(i for i in listed if i["name"] == "billing")["status"] == billing
    assert ipaddress.IPv4Address(httpbin["vip"]["ip"]) in ipaddress.IPv4Network("242.0.0.0/8")
    assert httpbin["addresses"][0]["hostname"] == "httpbin.extsvc.mesh.local"
    assert ipaddress.IPv4Address(everywhere["vips"][0]["ip"]) in ipaddress.IPv4Network("243.0.0.0/8")
    assert "addresses" not in everywhere  # Kuma has no default generator for it on a zone

    # `plan` and `reconcile --out` derive the same VIPs from the commit, without the state file.
    snapshot = GitSource(str(remote.bare)).snapshot_of(GitSource(str(remote.bare)).resolve(first))
    derived = build_mesh_model(snapshot.resources).vips
    saved = json.loads((state / "vips.json").read_text())["meshes"]["default"]
    assert saved == {entry: ip for (m, entry), ip in derived.items() if m == "default"}
    assert saved["MeshService:billing"] == vip and "service:billing" in saved

    # An allocation the file holds (made before, e.g. around a collision) is kept across a
    # restart, and a service added meanwhile moves no VIP.
    saved["MeshService:billing"] = "241.0.0.42"
    (state / "vips.json").write_text(json.dumps({"version": 1, "meshes": {"default": saved}}))
    second = remote.push({"orders.yaml": ORDERS, "orders-dp.yaml": dataplane_yaml("orders-1", "orders", 19200, 9200)})
    cp = ControlPlaneProcess(remote.bare, state, dataplane_auth=False, xds_tls=False)
    cp.start()
    try:
        cp.wait_applied(second)
        assert get(cp, "/meshes/default/meshservices/billing")["status"]["vips"] == [{"ip": "241.0.0.42"}]
        assert get(cp, "/meshes/default/meshexternalservices/httpbin")["status"]["vip"] == httpbin["vip"]
        orders = get(cp, "/meshes/default/meshservices/orders")["status"]
    finally:
        cp.stop()
    assert orders["vips"][0]["ip"] not in (vip, "241.0.0.42")
    after = json.loads((state / "vips.json").read_text())["meshes"]["default"]
    assert after["MeshService:orders"] == orders["vips"][0]["ip"]
    assert {k: after[k] for k in saved} == saved
