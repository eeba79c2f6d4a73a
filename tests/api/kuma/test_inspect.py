"""Kuma's inspect endpoints on a real `reconciler serve` over example-repo: `_rules`, `_config`,
`_resources/dataplanes` and a MeshService's `_dataplanes`, with Kuma's shapes and 404s."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.commands.read import read_snapshot
from reconciler.inspection.rules import inspect_rules
from reconciler.mesh.model import build_mesh_model
from tests.api.support import Reply, request, served_control_plane
from tests.e2e.harness import ControlPlaneProcess, wait_until

EXAMPLE_REPO = Path(__file__).resolve().parents[3] / "example-repo"


def _files() -> dict[str, str]:
    return {str(p.relative_to(EXAMPLE_REPO)): p.read_text() for p in EXAMPLE_REPO.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    with served_control_plane(tmp_path_factory.mktemp("inspect-api"), _files()) as (_, process, _commit):
        wait_until(lambda: _get(process, "/meshes/default/dataplanes/frontend-1/_rules").status == 200, 60, what="the commit applied")
        yield process


def _get(cp: ControlPlaneProcess, path: str) -> Reply:
    return request(cp.api, "GET", path)


def _rule(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(r for r in doc["rules"] if r["type"] == kind)


def test_rules_of_a_dataplane_name_each_policy_and_where_its_conf_came_from(cp: ControlPlaneProcess) -> None:
    doc = _get(cp, "/meshes/default/dataplanes/frontend-1/_rules").json()
    assert doc["resource"] == {"type": "Dataplane", "mesh": "default", "name": "frontend-1", "labels": doc["resource"]["labels"]}
    retry = _rule(doc, "MeshRetry")
    [to_backend] = [r for r in retry["toResourceRules"] if r["resourceMeta"]["name"] == "backend"]
    assert to_backend["resourceMeta"]["type"] == "MeshService"
    assert to_backend["conf"][0]["http"]["numRetries"] == 2
    assert [o["resourceMeta"]["name"] for o in to_backend["origin"]] == ["frontend-to-backend"]
    assert to_backend["origin"][0]["ruleIndex"] == 0
    trace = _rule(doc, "MeshTrace")
    assert trace["proxyRule"]["origin"][0]["name"] == "mesh-tracing"


def test_rules_show_the_meshhttproute_rules_and_their_matches_by_hash(cp: ControlPlaneProcess) -> None:
    doc = _get(cp, "/meshes/default/dataplanes/frontend-1/_rules").json()
    route = _rule(doc, "MeshHTTPRoute")
    [backend] = route["toResourceRules"]
    rules = backend["conf"][0]["rules"]
    assert {"kind": "MeshService", "name": "backend-v2", "port": 80, "weight": 1} in rules[0]["default"]["backendRefs"]
    assert backend["origin"][0]["resourceMeta"] == {"type": "MeshHTTPRoute", "mesh": "default", "name": "backend-canary", "labels": {}}
    hashes = {m["hash"]: m["match"] for m in doc["httpMatches"]}
    assert [r["matches"] for r in rules] == [hashes[h] for h in hashes]


def test_rules_answer_what_inspect_computes_from_the_same_commit(cp: ControlPlaneProcess) -> None:
    model = build_mesh_model(read_snapshot(str(EXAMPLE_REPO), None, None, True).resources)
    for name in ("frontend-1", "backend-v1", "orders-1", "redis-1"):
        served = _get(cp, f"/meshes/default/dataplanes/{name}/_rules").json()
        assert served == json.loads(json.dumps(inspect_rules(model, "default", name))), name


def test_unknown_dataplane_and_mesh_answer_kumas_404(cp: ControlPlaneProcess) -> None:
    reply = _get(cp, "/meshes/default/dataplanes/nope/_rules")
    assert reply.status == 404
    assert {k: v for k, v in reply.json().items() if k != "instance"} == {  # `instance`: an id of this answer
        "type": "/std-errors",
        "status": 404,
        "title": "Could not retrieve Dataplane",
        "detail": "Not found",
        "details": "Not found",
    }
    reply = _get(cp, "/meshes/nope/dataplanes/frontend-1/_rules")
    assert (reply.status, reply.json()["title"]) == (404, "Failed to retrieve Mesh")
    for path in ("/meshes/default/meshretries/nope/_resources/dataplanes", "/meshes/default/meshservices/nope/_dataplanes"):
        reply = _get(cp, path)
        assert (reply.status, reply.json()["title"]) == (404, "Could not retrieve policy"), path


def test_config_is_the_envoy_config_as_served_without_private_keys(cp: ControlPlaneProcess) -> None:
    reply = _get(cp, "/meshes/default/dataplanes/frontend-1/_config")
    assert reply.status == 200
    xds = reply.json()["xds"]
    listeners = xds["type.googleapis.com/envoy.config.listener.v3.Listener"]
    clusters = xds["type.googleapis.com/envoy.config.cluster.v3.Cluster"]
    assert all(name == body["name"] for name, body in listeners.items())
    old = _get(cp, "/config/default/frontend-1").json()["resources"]
    assert sorted(listeners) == sorted(r["name"] for r in old["LDS"])
    assert sorted(clusters) == sorted(r["name"] for r in old["CDS"])
    secrets = xds.get("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", {})
    text = reply.body.decode()
    assert "PRIVATE KEY" not in text
    redacted = base64.b64encode(b"[redacted]").decode()
    assert any(json.dumps(s).count(redacted) for s in secrets.values()), "the proxy's own key is shown masked"
    assert _get(cp, "/meshes/default/dataplanes/frontend-1/_config?shadow=maybe").status == 400
    assert _get(cp, "/meshes/default/dataplanes/frontend-1/_config?include=diff").json()["diff"] == []
    assert _get(cp, "/meshes/default/dataplanes/frontend-1/_config?include=everything").status == 400
    assert _get(cp, "/meshes/default/dataplanes/nope/_config").status == 404


def test_dataplanes_a_policy_selects_in_pages(cp: ControlPlaneProcess) -> None:
    doc = _get(cp, "/meshes/default/meshretries/frontend-to-backend/_resources/dataplanes").json()
    assert doc == {
        "total": 1,
        "items": [{"type": "Dataplane", "mesh": "default", "name": "frontend-1", "labels": doc["items"][0]["labels"]}],
        "next": None,
    }
    everyone = _get(cp, "/meshes/default/meshtimeouts/mesh-defaults-outbound/_resources/dataplanes").json()
    assert everyone["total"] >= 5
    first = _get(cp, "/meshes/default/meshtimeouts/mesh-defaults-outbound/_resources/dataplanes?size=2").json()
    assert [i["name"] for i in first["items"]] == [i["name"] for i in everyone["items"][:2]]
    assert first["next"].endswith("offset=2&size=2") or "offset=2" in first["next"]
    second = _get(cp, first["next"].split(cp.api, 1)[1]).json()
    assert [i["name"] for i in second["items"]] == [i["name"] for i in everyone["items"][2:4]]
    named = _get(cp, "/meshes/default/meshtimeouts/mesh-defaults-outbound/_resources/dataplanes?name=backend").json()
    assert [i["name"] for i in named["items"]] == ["backend-v1", "backend-v2"]
    assert _get(cp, "/meshes/default/meshtimeouts/mesh-defaults-outbound/_resources/dataplanes?size=x").status == 400


def test_dataplanes_a_meshservice_selects(cp: ControlPlaneProcess) -> None:
    doc = _get(cp, "/meshes/default/meshservices/redis/_dataplanes").json()
    assert [i["name"] for i in doc["items"]] == ["redis-1"]
    assert doc["total"] == 1
    # Kuma's server answers the same list on `_resources/dataplanes`.
    assert _get(cp, "/meshes/default/meshservices/redis/_resources/dataplanes").json() == doc
    backend = _get(cp, "/meshes/default/meshservices/backend/_dataplanes").json()
    assert [i["name"] for i in backend["items"]] == ["backend-v1", "backend-v2"]


def test_layout_names_inbounds_and_outbounds_by_kri_and_the_envoy_listener_serving_them(cp: ControlPlaneProcess) -> None:
    doc = _get(cp, "/meshes/default/dataplanes/frontend-1/_layout").json()
    assert doc["kri"] == "kri_dp_default___frontend-1_"
    assert doc["inbounds"] == [
        {"kri": "kri_dp_default___frontend-1_http", "port": 15001, "protocol": "http", "proxyResourceName": "inbound:127.0.0.1:15001"}
    ]
    assert [(o["kri"], o["port"], o["protocol"]) for o in doc["outbounds"]] == [
        ("kri_msvc_default___backend_http", 80, "http"),
        ("kri_msvc_default___redis_redis", 6379, "tcp"),
    ]
    served = _get(cp, "/meshes/default/dataplanes/frontend-1/_config").json()["xds"][
        "type.googleapis.com/envoy.config.listener.v3.Listener"
    ]
    assert {o["proxyResourceName"] for o in doc["outbounds"] + doc["inbounds"]} <= set(served)


def test_policies_of_the_proxy_an_inbound_an_outbound_and_its_routes_by_kri(cp: ControlPlaneProcess) -> None:
    base = "/meshes/default/dataplanes/frontend-1"
    proxy = _get(cp, f"{base}/_policies").json()["policies"]
    assert {"kind": "MeshTrace", "origins": [{"kri": "kri_mtr_default___mesh-tracing_"}]}.items() <= next(
        p for p in proxy if p["kind"] == "MeshTrace"
    ).items()
    inbound = _get(cp, f"{base}/_inbounds/kri_dp_default___frontend-1_http/_policies").json()["policies"]
    [permission] = [p for p in inbound if p["kind"] == "MeshTrafficPermission"]
    assert permission["origins"] == [{"kri": "kri_mtp_default___edge-gateway-to-frontend_"}]
    outbound = _get(cp, f"{base}/_outbounds/kri_msvc_default___backend_http/_policies").json()["policies"]
    [retry] = [p for p in outbound if p["kind"] == "MeshRetry"]
    assert retry["conf"][0]["http"]["numRetries"] == 2
    assert retry["origins"] == [{"kri": "kri_mr_default___frontend-to-backend_"}]
    [routes] = _get(cp, f"{base}/_outbounds/kri_msvc_default___backend_http/_routes").json()["routes"]
    assert routes["kind"] == "MeshHTTPRoute"
    assert [r["kri"] for r in routes["rules"]] == ["kri_mhttpr_default___backend-canary_"] * 2
    assert routes["rules"][0]["matches"] == [
        {"path": {"value": "/", "type": "PathPrefix"}, "headers": [{"name": "x-canary", "type": "Exact", "value": "true"}]}
    ]
    route = _get(cp, f"{base}/_outbounds/kri_msvc_default___backend_http/_routes/kri_mhttpr_default___backend-canary_/_policies").json()
    assert {p["kind"]: p["conf"] for p in route["policies"]}["MeshRetry"] == retry["conf"]
    [tcp] = _get(cp, f"{base}/_outbounds/kri_msvc_default___redis_redis/_routes").json()["routes"]
    assert tcp["kind"] == "MeshTCPRoute" and tcp["origins"] == [{"kri": "kri_mtcpr_default___frontend-to-redis_"}]


def test_a_bad_kri_is_a_400_and_an_unknown_one_a_404(cp: ControlPlaneProcess) -> None:
    reply = _get(cp, "/meshes/default/dataplanes/frontend-1/_outbounds/invalid-kri/_policies")
    assert reply.status == 400
    assert reply.json()["detail"] == 'bad request: invalid identifier string: "invalid-kri"'
    assert _get(cp, "/meshes/default/dataplanes/frontend-1/_inbounds/kri_dp_default___frontend-1_nope/_policies").status == 404
    assert _get(cp, "/meshes/default/dataplanes/frontend-1/_outbounds/kri_msvc_default___orders_http/_routes").status == 404


def test_rules_of_a_meshgateway(cp: ControlPlaneProcess) -> None:
    doc = _get(cp, "/meshes/default/meshgateways/edge-gateway/_rules").json()
    assert doc["resource"] == {"type": "MeshGateway", "mesh": "default", "name": "edge-gateway", "labels": {}}
    assert _rule(doc, "MeshTrace")["proxyRule"]["origin"][0]["name"] == "mesh-tracing"
    reply = _get(cp, "/meshes/default/meshgateways/nope/_rules")
    assert (reply.status, reply.json()["title"]) == (404, "Could not retrieve MeshGateway")
