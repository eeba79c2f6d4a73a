"""Issue 12 items 12-13 through the pre-receive hook, with a real `git push` to a bare repository:
the pusher sees the dangling-reference and dead-policy warnings at file:line; a Mesh labelled
mesh-reconciler.io/strict-references: "true" gets the push refused."""

from __future__ import annotations

from pathlib import Path

from tests.commands.test_mesh_warnings import timeout
from tests.gitops.helpers import dataplane, mesh
from tests.gitops.test_hook import Remote, remote_lines

ROUTE = """\
type: MeshHTTPRoute
name: to-backend
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      rules:
        - matches:
            - path:
                type: PathPrefix
                value: /
          default:
            backendRefs:
              - kind: MeshService
                name: backnd
"""

FILES: dict[str, str | None] = {
    "dataplanes/web.yaml": dataplane("web", 18080, 19000, 19901, {"backend": 20001}),
    "dataplanes/backend.yaml": dataplane("backend", 18090, 19001, 19902),
    "policies/route.yaml": ROUTE,
    "policies/timeout.yaml": timeout("t"),
}


def test_the_pusher_sees_the_warnings_and_the_push_is_accepted(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    tip = remote.commit({"meshes/default.yaml": mesh(), **FILES})
    pushed = remote.push("HEAD:refs/heads/main")
    assert pushed.returncode == 0, pushed.stderr
    assert remote.branch() == tip
    lines = remote_lines(pushed.stderr)
    assert any(
        line.startswith("policies/route.yaml:19: warning: MeshHTTPRoute default/to-backend /spec/to/0/rules/0/default/backendRefs/0/name:")
        and 'did you mean "backend"?' in line
        for line in lines
    ), lines
    assert any(
        line.startswith("policies/timeout.yaml:5: warning: MeshTimeout default/t /spec/targetRef: dead policy:")
        and "mesh-timeout-all-default" in line
        for line in lines
    ), lines


def test_a_strict_mesh_refuses_the_push(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    strict = mesh() + 'labels:\n  mesh-reconciler.io/strict-references: "true"\n'
    remote.commit({"meshes/default.yaml": strict, **FILES})
    refused = remote.push("HEAD:refs/heads/main")
    assert refused.returncode != 0
    assert remote.branch() is None
    lines = remote_lines(refused.stderr)
    assert any(
        line.startswith("policies/route.yaml:19: MeshHTTPRoute default/to-backend /spec/to/0/rules/0/default/backendRefs/0/name:")
        and "mesh-reconciler.io/strict-references makes this an error" in line
        for line in lines
    ), lines
    assert any("refusing refs/heads/main" in line for line in lines), lines
