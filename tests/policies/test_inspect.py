"""`reconciler inspect dataplane MESH NAME --policies`: the merged conf per connection and its origins."""

from __future__ import annotations

import json

from click.testing import CliRunner

from reconciler.cli import cli
from tests.support import GitRepo

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
    result = CliRunner().invoke(cli, ["inspect", "dataplane", "--repo", str(repo.path), "default", "web-1"])
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
