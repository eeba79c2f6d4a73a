"""`GET .../_config` is what a real Envoy was given: a `reconciler serve` with one real Envoy
connected, whose own admin `/config_dump` holds the very listeners and clusters `_config` shows
(and `reconciler inspect --type config-dump` of the same commit is that dump)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from google.protobuf.message import Message

from reconciler.cli import cli
from reconciler.xds.resources import message_class
from tests.api.support import request, served_control_plane
from tests.e2e.harness import ControlPlaneProcess, EnvoyProcess, free_port
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"


@pytest.fixture(scope="module")
def connected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlaneProcess, EnvoyProcess, Path]]:
    root: Path = tmp_path_factory.mktemp("inspect-config")
    files = {
        "mesh.yaml": "type: Mesh\nname: default\n",
        "web.yaml": dataplane_yaml("web-1", "web", free_port(), free_port(), {"backend": free_port()}, admin_port=free_port()),
        "backend.yaml": dataplane_yaml("backend-1", "backend", free_port(), free_port()),
        "timeout.yaml": """\
type: MeshTimeout
name: backend
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default: {http: {requestTimeout: 7s}}
""",
    }
    with served_control_plane(root, files) as (remote, cp, first):
        envoy = EnvoyProcess(cp, root / "envoys", name="web-1")
        envoy.start()
        try:
            cp.wait_applied(first, ["default.web-1"], timeout=60)
            yield cp, envoy, remote.bare
        finally:
            envoy.stop()


def _message(type_url: str, body: dict[str, Any]) -> Message:
    """The proto a JSON form stands for (camelCase or proto field names alike)."""
    msg = message_class(type_url)()
    json_format.ParseDict({k: v for k, v in body.items() if k != "@type"}, msg)
    return msg


def test_config_holds_the_listeners_and_clusters_envoy_was_given(connected: tuple[ControlPlaneProcess, EnvoyProcess, Path]) -> None:
    cp, envoy, _ = connected
    xds = request(cp.api, "GET", "/meshes/default/dataplanes/web-1/_config").json()["xds"]
    by_type = {c["@type"].rsplit(".", 1)[1]: c for c in envoy.config_dump()["configs"]}
    envoy_listeners = {d["name"]: d["active_state"]["listener"] for d in by_type["ListenersConfigDump"].get("dynamic_listeners", [])}
    envoy_clusters = {c["cluster"]["name"]: c["cluster"] for c in by_type["ClustersConfigDump"].get("dynamic_active_clusters", [])}
    # Beside Envoy's listeners, the API listeners a proxyless gRPC client asks for by name,
    # which are never in a wildcard answer (Envoy never asks for them).
    api_listeners = {name for name, body in xds[LISTENER].items() if "apiListener" in body}
    assert set(xds[LISTENER]) - api_listeners == set(envoy_listeners) and envoy_listeners
    assert set(xds[CLUSTER]) == set(envoy_clusters) and envoy_clusters
    for name, listener in xds[LISTENER].items():
        if name in api_listeners:
            continue
        assert _message(LISTENER, listener) == _message(LISTENER, envoy_listeners[name]), name
    for name, cluster in xds[CLUSTER].items():
        assert _message(CLUSTER, cluster) == _message(CLUSTER, envoy_clusters[name]), name


def test_inspect_config_dump_is_envoys_dump_of_the_same_commit(connected: tuple[ControlPlaneProcess, EnvoyProcess, Path]) -> None:
    _, envoy, repo = connected
    result = CliRunner().invoke(cli, ["inspect", "dataplane", "--repo", str(repo), "--type", "config-dump", "default", "web-1"])
    assert result.exit_code == 0, result.output
    ours = {c["@type"]: c for c in json.loads(result.output)["configs"]}
    theirs = {c["@type"]: c for c in envoy.config_dump()["configs"]}
    dump = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"
    mine = {d["name"]: d["active_state"]["listener"] for d in ours[dump]["dynamic_listeners"]}
    envoys = {d["name"]: d["active_state"]["listener"] for d in theirs[dump]["dynamic_listeners"]}
    assert {n: b for n, b in mine.items() if "api_listener" not in b} == envoys
    clusters = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
    mine = {c["cluster"]["name"]: c["cluster"] for c in ours[clusters]["dynamic_active_clusters"]}
    envoys = {c["cluster"]["name"]: c["cluster"] for c in theirs[clusters]["dynamic_active_clusters"]}
    assert mine == envoys
