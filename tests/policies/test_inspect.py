"""`reconciler inspect` on a real git repository: a dataplane's Kuma rules (the default), its merged
conf per connection (`--type policies`), its Envoy config (`--type config|config-dump`), the
dataplanes a policy selects and the dataplane list."""

from __future__ import annotations

import json

from click.testing import CliRunner

from reconciler.cli import cli
from tests.support import GitRepo, gateway_yaml

FILES = {
    "mesh.yaml": "type: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\n",
    "web.yaml": """\
type: Dataplane
mesh: default
name: web-1
networking:
  address: 10.0.0.1
  inbound:
    - port: 8080
      tags: {kuma.io/service: web, kuma.io/protocol: http}
  outbound:
    - port: 10001
      tags: {kuma.io/service: backend}
""",
    "timeouts.yaml": """\
type: MeshTimeout
name: mesh-wide
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default: {idleTimeout: 20s, http: {requestTimeout: 2s}}
---
type: MeshTimeout
name: backend
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default: {http: {requestTimeout: 10s}}
""",
}


def test_inspect_prints_merged_conf_and_contributing_policies(repo: GitRepo) -> None:
    sha = repo.commit(FILES)
    result = CliRunner().invoke(cli, ["inspect", "dataplane", "--repo", str(repo.path), "--type", "policies", "default", "web-1"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"Dataplane default.web-1 at {sha}",
        "outbound shape: kuma (the default)",
        "inbound 10.0.0.1:8080 (web, http)",
        "  (no policy)",
        "outbound 127.0.0.1:10001 -> backend (tcp)",
        '  MeshTimeout: {"http": {"requestTimeout": "10s"}, "idleTimeout": "20s"}',
        "    from MeshTimeout default/mesh-wide /spec/to/0",
        "    from MeshTimeout default/backend /spec/to/0",
    ]
    doc = json.loads(
        CliRunner()
        .invoke(cli, ["inspect", "dataplane", "--repo", str(repo.path), "--format", "json", "--config", "default", "web-1"])
        .output
    )
    assert doc["outbounds"][0]["policies"][0]["from"][1] == {"policy": "MeshTimeout default/backend", "pointer": "/spec/to/0"}
    assert {r["name"] for r in doc["envoy"]["LDS"]} == {"inbound:10.0.0.1:8080", "outbound:127.0.0.1:10001"}


def test_inspect_of_a_missing_dataplane_is_a_usage_error(repo: GitRepo) -> None:
    repo.commit(FILES)
    result = CliRunner().invoke(cli, ["inspect", "dataplane", "--repo", str(repo.path), "default", "nope"])
    assert result.exit_code == 2
    assert "no Dataplane default/nope" in result.output


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, ["inspect", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_inspect_prints_kumas_rules_by_default_and_as_the_api_in_json(repo: GitRepo) -> None:
    sha = repo.commit(FILES)
    assert _invoke("dataplane", "--repo", str(repo.path), "default", "web-1").splitlines() == [
        f"Dataplane default.web-1 at {sha}",
        "outbound shape: kuma (the default)",
        "MeshTimeout",
        '  to kuma.io/service=backend: {"http": {"requestTimeout": "10s"}, "idleTimeout": "20s"}',
        "    from MeshTimeout default/mesh-wide",
        "    from MeshTimeout default/backend",
        '  to any other destination: {"http": {"requestTimeout": "2s"}, "idleTimeout": "20s"}',
        "    from MeshTimeout default/mesh-wide",
    ]
    doc = json.loads(_invoke("dataplane", "--repo", str(repo.path), "--format", "json", "default", "web-1"))
    assert doc["resource"] == {"type": "Dataplane", "mesh": "default", "name": "web-1", "labels": {}}
    [timeout] = doc["rules"]
    mesh_wide = {"type": "MeshTimeout", "mesh": "default", "name": "mesh-wide", "labels": {}}
    assert timeout["toRules"] == [
        {
            "matchers": [{"key": "kuma.io/service", "value": "backend", "not": False}],
            "conf": {"http": {"requestTimeout": "10s"}, "idleTimeout": "20s"},
            "origin": [mesh_wide, {"type": "MeshTimeout", "mesh": "default", "name": "backend", "labels": {}}],
        },
        # Kuma's catch-all last: the conf of a destination no entry names.
        {"matchers": [], "conf": {"http": {"requestTimeout": "2s"}, "idleTimeout": "20s"}, "origin": [mesh_wide]},
    ]
    assert timeout["toResourceRules"] == [
        {
            "resourceMeta": {"type": "Mesh", "mesh": "", "name": "default", "labels": {}},
            "resourceSectionName": "",
            "conf": [{"http": {"requestTimeout": "2s"}, "idleTimeout": "20s"}],
            "origin": [{"resourceMeta": mesh_wide, "ruleIndex": 0}],
        }
    ]


ROUTE = """\
type: MeshHTTPRoute
name: canary
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /v2}, method: GET}]
          default:
            backendRefs: [{kind: MeshServiceSubset, name: backend, tags: {version: v2}}]
"""

BACKEND = """\
type: Dataplane
mesh: default
name: backend-1
networking:
  address: 10.0.0.2
  inbound:
    - port: 9000
      tags: {kuma.io/service: backend, kuma.io/protocol: http, version: v2}
"""


def test_inspect_shows_meshhttproute_rules_of_an_outbound(repo: GitRepo) -> None:
    repo.commit({**FILES, "route.yaml": ROUTE, "backend.yaml": BACKEND})
    out = _invoke("dataplane", "--repo", str(repo.path), "default", "web-1").splitlines()
    at = out.index("MeshHTTPRoute")
    assert out[at + 1 : at + 4] == [
        "  to kuma.io/service=backend:",
        '    PathPrefix /v2 GET: {"backendRefs": [{"kind": "MeshServiceSubset", "name": "backend", "tags": {"version": "v2"}, "weight": 1}]}',
        "    from MeshHTTPRoute default/canary",
    ]


def test_inspect_config_is_the_api_document_and_config_dump_envoys(repo: GitRepo) -> None:
    repo.commit(FILES)
    config = json.loads(_invoke("dataplane", "--repo", str(repo.path), "--type", "config", "default", "web-1"))
    listeners = config["xds"]["type.googleapis.com/envoy.config.listener.v3.Listener"]
    assert sorted(listeners) == ["inbound:10.0.0.1:8080", "outbound:127.0.0.1:10001"]
    dump = json.loads(_invoke("dataplane", "--repo", str(repo.path), "--type", "config-dump", "default", "web-1"))
    by_type = {c["@type"].rsplit(".", 1)[1]: c for c in dump["configs"]}
    dumped = {d["name"]: d["active_state"]["listener"] for d in by_type["ListenersConfigDump"]["dynamic_listeners"]}
    assert sorted(dumped) == sorted(listeners)
    inbound = dumped["inbound:10.0.0.1:8080"]
    # Envoy's own JSON: proto field names, where the API's `_config` has camelCase.
    assert inbound["traffic_direction"] == listeners["inbound:10.0.0.1:8080"]["trafficDirection"] == "INBOUND"
    clusters = [c["cluster"]["name"] for c in by_type["ClustersConfigDump"]["dynamic_active_clusters"]]
    assert sorted(clusters) == sorted(config["xds"]["type.googleapis.com/envoy.config.cluster.v3.Cluster"])


def test_type_and_the_old_flags_do_not_mix(repo: GitRepo) -> None:
    repo.commit(FILES)
    result = CliRunner().invoke(
        cli, ["inspect", "dataplane", "--repo", str(repo.path), "--type", "rules", "--policies", "default", "web-1"]
    )
    assert result.exit_code == 2
    assert "--type cannot be combined" in result.output


def test_inspect_policy_lists_the_dataplanes_it_selects(repo: GitRepo) -> None:
    other = BACKEND.replace("name: backend-1", "name: api-1").replace("kuma.io/service: backend", "kuma.io/service: api")
    only_web = ROUTE.replace("targetRef: {kind: Mesh}\n  to:", "targetRef: {kind: MeshService, name: web}\n  to:", 1)
    repo.commit({**FILES, "route.yaml": only_web, "backend.yaml": BACKEND, "api.yaml": other})
    assert _invoke("policy", "--repo", str(repo.path), "meshhttproutes", "canary").splitlines() == [
        "Affected data plane proxies:",
        "",
        "  web-1",
    ]
    doc = json.loads(_invoke("policy", "--repo", str(repo.path), "--format", "json", "MeshTimeout", "mesh-wide"))
    assert [i["name"] for i in doc["items"]] == ["api-1", "backend-1", "web-1"]
    result = CliRunner().invoke(cli, ["inspect", "policy", "--repo", str(repo.path), "MeshTimeout", "nope"])
    assert result.exit_code == 2 and "no MeshTimeout default/nope" in result.output
    result = CliRunner().invoke(cli, ["inspect", "policy", "--repo", str(repo.path), "Meshy", "nope"])
    assert result.exit_code == 2 and "not a policy kind" in result.output


def test_inspect_dataplanes_counts_the_policies_selecting_each(repo: GitRepo) -> None:
    only_web = ROUTE.replace("targetRef: {kind: Mesh}\n  to:", "targetRef: {kind: MeshService, name: web}\n  to:", 1)
    repo.commit({**FILES, "route.yaml": only_web, "backend.yaml": BACKEND})
    assert _invoke("dataplanes", "--repo", str(repo.path)).splitlines() == [
        "MESH       NAME      POLICIES",
        "default    backend-1 2",
        "default    web-1     3",
    ]


def test_inspect_meshgateway_prints_the_rules_of_its_proxy(repo: GitRepo) -> None:
    trace = """\
type: MeshTrace
name: tracing
mesh: default
spec:
  targetRef: {kind: MeshGateway, name: edge}
  default:
    backends: [{type: Zipkin, zipkin: {url: "http://127.0.0.1:9411/api/v2/spans"}}]
"""
    sha = repo.commit({**FILES, "gateway.yaml": gateway_yaml(8080, "backend"), "trace.yaml": trace})
    assert _invoke("meshgateway", "--repo", str(repo.path), "default", "edge").splitlines() == [
        f"MeshGateway default/edge at {sha}",
        "MeshTimeout",
        '  to any other destination: {"http": {"requestTimeout": "2s"}, "idleTimeout": "20s"}',
        "    from MeshTimeout default/mesh-wide",
        "MeshTrace",
        '  proxy: {"backends": [{"type": "Zipkin", "zipkin": {"url": "http://127.0.0.1:9411/api/v2/spans"}}]}',
        "    from MeshTrace default/tracing",
    ]
    doc = json.loads(_invoke("meshgateway", "--repo", str(repo.path), "--format", "json", "default", "edge"))
    assert doc["resource"] == {"type": "MeshGateway", "mesh": "default", "name": "edge", "labels": {}}
    result = CliRunner().invoke(cli, ["inspect", "meshgateway", "--repo", str(repo.path), "default", "nope"])
    assert result.exit_code == 2 and "no MeshGateway default/nope" in result.output
