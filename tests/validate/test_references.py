"""Issue 12 item 12: a targetRef or backendRef naming a MeshService, service, MeshHTTPRoute,
MeshGateway or MeshExternalService that its mesh lacks is a warning at file:line with the closest
name; a Mesh labelled mesh-reconciler.io/strict-references: "true" makes it an error."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli
from tests.support import GitRepo, dataplane_yaml, problem_dicts, validate_text

MESH = "type: Mesh\nname: default\n"
STRICT_MESH = 'type: Mesh\nname: default\nlabels:\n  mesh-reconciler.io/strict-references: "true"\n'

WORLD = (
    dataplane_yaml("web", "web", 18080, 19000)
    + "---\n"
    + dataplane_yaml("backend", "backend", 18090, 19001)
    + """---
type: MeshService
name: payments
mesh: default
spec:
  selector:
    dataplaneTags:
      kuma.io/service: payments-legacy
  ports:
    - port: 80
      targetPort: 8080
      appProtocol: http
---
type: MeshExternalService
name: httpbin
mesh: default
spec:
  match: {type: HostnameGenerator, port: 80, protocol: http}
  endpoints:
    - address: httpbin.org
      port: 80
---
type: MeshHTTPRoute
name: to-backend
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /}}]
          default:
            backendRefs:
              - {kind: MeshService, name: backnd, weight: 1}
              - {kind: MeshExternalService, name: httpbn, weight: 1}
            filters:
              - type: RequestMirror
                requestMirror:
                  backendRef: {kind: MeshService, name: payments}
"""
)

TIMEOUTS = """---
type: MeshTimeout
name: route-timeout
mesh: default
spec:
  targetRef: {kind: MeshHTTPRoute, name: to-backnd}
  to:
    - targetRef: {kind: Mesh}
      default:
        http: {requestTimeout: 20s}
---
type: MeshTimeout
name: good
mesh: default
spec:
  targetRef: {kind: MeshService, name: web}
  to:
    - targetRef: {kind: MeshService, name: bakend}
      default: {idleTimeout: 20s}
    - targetRef: {kind: MeshService, name: payments-legacy}
      default: {idleTimeout: 20s}
    - targetRef: {kind: MeshExternalService, name: httpbin}
      default: {idleTimeout: 20s}
"""


def _warnings(text: str) -> list[dict[str, object]]:
    report = validate_text(text, add_meshes=False)
    assert report.errors == (), problem_dicts(report.errors)
    # only this check's warnings (Kuma's deprecation warnings are about other fields)
    return [w for w in problem_dicts(report.warnings) if str(w["pointer"]).endswith("/name")]


def test_each_dangling_reference_is_a_warning_at_its_line_with_the_closest_name() -> None:
    text = MESH + "---\n" + WORLD + TIMEOUTS
    lines = text.splitlines()
    found = _warnings(text)
    by_pointer = {str(w["pointer"]): w for w in found}
    assert set(by_pointer) == {
        "/spec/to/0/rules/0/default/backendRefs/0/name",
        "/spec/to/0/rules/0/default/backendRefs/1/name",
        "/spec/targetRef/name",
        "/spec/to/0/targetRef/name",
    }, found
    for w in found:
        assert w["severity"] == "warning"
        assert "name:" in lines[int(str(w["line"])) - 1]  # the line of the misspelt name itself
    assert by_pointer["/spec/to/0/rules/0/default/backendRefs/0/name"]["message"] == (
        'no MeshService and no Dataplane with kuma.io/service "backnd" in mesh "default"; did you mean "backend"? '
        "Kuma accepts it and it selects nothing until that exists; fix the name or add the MeshService"
    )
    assert 'MeshExternalService "httpbn" does not exist in mesh "default"; did you mean "httpbin"?' in str(
        by_pointer["/spec/to/0/rules/0/default/backendRefs/1/name"]["message"]
    )
    assert 'MeshHTTPRoute "to-backnd" does not exist in mesh "default"; did you mean "to-backend"?' in str(
        by_pointer["/spec/targetRef/name"]["message"]
    )
    assert 'did you mean "backend"?' in str(by_pointer["/spec/to/0/targetRef/name"]["message"])


def test_names_that_exist_give_no_warning() -> None:
    fixed = (MESH + "---\n" + WORLD + TIMEOUTS).replace("backnd", "backend").replace("httpbn", "httpbin").replace("bakend", "backend")
    assert _warnings(fixed) == []


def test_services_are_not_checked_when_proxies_only_register_at_runtime() -> None:
    """No Dataplane and no MeshService in git: service names come from proxies that register
    themselves, so a MeshService reference cannot be judged; a MeshGateway one still can."""
    text = (
        MESH
        + """---
type: MeshHTTPRoute
name: r
mesh: default
spec:
  targetRef: {kind: MeshGateway, name: edge}
  to:
    - targetRef: {kind: Mesh}
      rules:
        - matches: [{path: {type: PathPrefix, value: /}}]
          default:
            backendRefs: [{kind: MeshService, name: anything}]
"""
    )
    assert [w["pointer"] for w in _warnings(text)] == ["/spec/targetRef/name"]


def test_a_strict_mesh_turns_the_warnings_into_errors(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "config")
    repo.commit({"mesh.yaml": STRICT_MESH, "world.yaml": WORLD})
    runner = CliRunner()
    result = runner.invoke(cli, ["validate", "--repo", str(repo.path)])
    assert result.exit_code == 1, result.output
    assert "world.yaml:57: MeshHTTPRoute default/to-backend /spec/to/0/rules/0/default/backendRefs/0/name: no MeshService" in result.output
    assert "the Mesh's label mesh-reconciler.io/strict-references makes this an error" in result.output
    repo.commit({"mesh.yaml": MESH})
    relaxed = runner.invoke(cli, ["validate", "--repo", str(repo.path)])
    assert relaxed.exit_code == 0, relaxed.output
    assert 'did you mean "backend"?' in relaxed.output


KUBERNETES_FORM = """apiVersion: kuma.io/v1alpha1
kind: Mesh
metadata: {name: default}
spec: {}
---
apiVersion: kuma.io/v1alpha1
kind: MeshService
metadata: {name: backend, namespace: payments, labels: {kuma.io/mesh: default}}
spec:
  selector: {dataplaneTags: {app: backend}}
  ports: [{port: 80, targetPort: 8080, appProtocol: http}]
---
apiVersion: kuma.io/v1alpha1
kind: MeshTimeout
metadata: {name: backend-timeouts, namespace: payments, labels: {kuma.io/mesh: default}}
spec:
  to:
    - targetRef: {kind: MeshService, name: NAME}
      default: {idleTimeout: 20s}
"""


def test_a_kubernetes_form_reference_names_the_display_name_not_the_stored_one() -> None:
    # Stored as backend.payments; the policy in payments writes `backend`, as on Kubernetes.
    assert _warnings(KUBERNETES_FORM.replace("NAME", "backend")) == []
    [warning] = _warnings(KUBERNETES_FORM.replace("NAME", "bakend"))
    assert 'did you mean "backend"?' in str(warning["message"]), warning
