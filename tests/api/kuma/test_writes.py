"""Writes on Kuma's resource paths are refused with 405, `Allow: GET, HEAD` and Kuma's error
shape, naming the repository and branch to commit to; nothing changes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.api.kuma.descriptors import descriptors
from tests.api.support import request, served_control_plane
from tests.e2e.harness import ControlPlaneProcess

MESH = "type: Mesh\nname: default\n"
TIMEOUT = """\
type: MeshTimeout
name: keep
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        idleTimeout: 1h
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlaneProcess, str]]:
    root = tmp_path_factory.mktemp("kuma-writes")
    with served_control_plane(root, {"mesh.yaml": MESH, "timeout.yaml": TIMEOUT}, extra=("--dataplane-auth", "none")) as (remote, cp, sha):
        cp.wait_applied(sha)
        yield cp, str(remote.bare)


def _paths() -> list[str]:
    out = []
    for d in descriptors():
        base = f"/{d.path}" if d.global_scope else f"/meshes/default/{d.path}"
        out += [base, f"{base}/some-name"]
    return out


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH", "DELETE"])
def test_every_write_on_every_kind_is_refused_with_where_to_commit(served: tuple[ControlPlaneProcess, str], method: str) -> None:
    cp, repository = served
    for path in _paths():
        reply = request(cp.api, method, path, {"type": "MeshTimeout", "name": "x", "mesh": "default"})
        assert reply.status == 405, (method, path, reply.body)
        assert reply.headers["allow"] == "GET, HEAD"
        body = reply.json()
        assert (body["type"], body["status"], body["title"]) == ("/std-errors", 405, "Method not allowed")
        assert f"branch main of {repository}" in body["detail"], body["detail"]
        assert "git push" in body["detail"]


def test_a_refused_write_changes_nothing(served: tuple[ControlPlaneProcess, str]) -> None:
    cp, _ = served
    before = request(cp.api, "GET", "/meshes/default/meshtimeouts/keep").json()
    assert request(cp.api, "DELETE", "/meshes/default/meshtimeouts/keep").status == 405
    assert request(cp.api, "PUT", "/meshes/default/meshtimeouts/new", {"type": "MeshTimeout"}).status == 405
    assert request(cp.api, "GET", "/meshes/default/meshtimeouts/keep").json() == before
    assert request(cp.api, "GET", "/meshes/default/meshtimeouts/new").status == 404
    assert request(cp.api, "DELETE", "/meshes/default").status == 405
    assert request(cp.api, "GET", "/meshes/default").status == 200
