"""Policies reach builtin gateway listeners by their tags: Kuma's matcher goldens
`matchedpolicies/meshgateways` 01 and 02 (pkg/plugins/policies/core/matchers/testdata, v2.14.3),
written here in this project's Universal form, and the conf each listener gets compared with
Kuma's `ToRules.ByListener` (the policies merged, in order, and the resulting conf)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.mesh.model import build_mesh_model
from reconciler.policies.core.match import PolicyIndex, matched_policies
from reconciler.validate import validate
from reconciler.views.gateway_policies import listener_index
from reconciler.views.proxy import proxy_views
from tests.support import snapshot_of_text

GATEWAY_DATAPLANE = """\
type: Mesh
name: mesh-1
skipCreatingInitialPolicies: ["*"]
---
type: Dataplane
mesh: mesh-1
name: gateway-1
networking:
  address: 127.0.0.1
  gateway:
    type: BUILTIN
    tags:
      kuma.io/service: edge-gateway
"""


def access_log(name: str, target: str, to_path: str, from_path: str = "") -> str:
    from_part = (
        f"""
  from:
    - targetRef: {{kind: Mesh}}
      default:
        backends: [{{type: File, file: {{path: {from_path}}}}}]"""
        if from_path
        else ""
    )
    return f"""---
type: MeshAccessLog
mesh: mesh-1
name: {name}
spec:
  targetRef: {target}{from_part}
  to:
    - targetRef: {{kind: Mesh}}
      default:
        backends: [{{type: File, file: {{path: {to_path}}}}}]
"""


def gateway(listeners: list[tuple[int, str, str]]) -> str:
    items = "".join(
        f"\n    - port: {port}\n      protocol: HTTP\n"
        + (f"      hostname: {hostname}\n" if hostname else "")
        + f"      tags:\n        listener: {tag}"
        for port, tag, hostname in listeners
    )
    return f"""---
type: MeshGateway
mesh: mesh-1
name: gateway-1
selectors:
  - match:
      kuma.io/service: edge-gateway
conf:
  listeners:{items}
"""


CASE_01 = (
    GATEWAY_DATAPLANE
    + access_log("mesh", "{kind: Mesh}", "/mesh")
    + access_log("servicesubset", "{kind: MeshServiceSubset, name: edge-gateway, tags: {listener: two}}", "/servicesubset")
    + access_log("gateway", "{kind: MeshGateway, name: gateway-1}", "/to-gateway", from_path="/from-gateway")
    + access_log("gatewaylistener", "{kind: MeshGateway, name: gateway-1, tags: {listener: one}}", "/gateway-listener")
    + access_log("nonmatchinggatewaylistener", "{kind: MeshGateway, name: other-gateway, tags: {listener: three}}", "/shouldnt-be-applied")
    + gateway([(8080, "one", ""), (8081, "two", ""), (8082, "three", "")])
)
CASE_02 = (
    GATEWAY_DATAPLANE
    + access_log("mesh", "{kind: Mesh}", "/mesh")
    + access_log("meshsubset", "{kind: MeshSubset, proxyTypes: [Gateway]}", "/meshsubset")
    + access_log("nonmatchinggatewaylistener", "{kind: MeshGateway, name: other-gateway, tags: {listener: three}}", "/shouldnt-be-applied")
    + access_log(
        "only-one-hostname-listener", "{kind: MeshGateway, name: gateway-1, tags: {listener: four-hostname-1}}", "/applied-only-to-hostname"
    )
    + gateway(
        [
            (8080, "one", ""),
            (8081, "two", ""),
            (8082, "three", ""),
            (8083, "four-hostname-1", "four-hostname-1"),
            (8083, "four-hostname-2", "four-hostname-2"),
        ]
    )
)

# Kuma's golden ToRules.ByListener: per listener, the policies merged (in order) and the conf.
EXPECTED_01 = {
    8080: (["mesh", "gateway", "gatewaylistener"], "/gateway-listener"),
    8081: (["mesh", "gateway", "servicesubset"], "/servicesubset"),
    8082: (["mesh", "gateway"], "/to-gateway"),
}
EXPECTED_02 = {
    8080: (["mesh", "meshsubset"], "/meshsubset"),
    8081: (["mesh", "meshsubset"], "/meshsubset"),
    8082: (["mesh", "meshsubset"], "/meshsubset"),
    8083: (["mesh", "meshsubset", "only-one-hostname-listener"], "/applied-only-to-hostname"),
}


def _per_listener(text: str) -> dict[int, tuple[list[str], Any]]:
    snapshot = snapshot_of_text(text)
    report = validate(snapshot)
    assert report.valid, "\n".join(p.render() for p in report.errors)
    model = build_mesh_model(snapshot.resources)
    view = proxy_views(model)["mesh-1.gateway-1"]
    assert view.gateway is not None
    dp = view.dataplane
    index = PolicyIndex.build(
        [r for r in snapshot.resources if r.type == "MeshAccessLog"],
        [r for r in snapshot.resources if r.type == "MeshGateway"],
    )
    out = {}
    for listener in view.gateway.listeners:
        scoped = listener_index(index, dp, (dp.address, listener.port))
        names = [m.resource.name for m in matched_policies("MeshAccessLog", dp, scoped)]
        conf = listener.confs.get("MeshAccessLog") or {}
        out[listener.port] = (names, [b["file"]["path"] for b in conf.get("backends") or ()])
    return out


@pytest.mark.parametrize(("text", "expected"), [(CASE_01, EXPECTED_01), (CASE_02, EXPECTED_02)], ids=["kuma-01", "kuma-02"])
def test_each_gateway_listener_gets_the_policies_its_tags_select(text: str, expected: dict[int, tuple[list[str], str]]) -> None:
    got = _per_listener(text)
    assert got == {port: (names, [path]) for port, (names, path) in expected.items()}
