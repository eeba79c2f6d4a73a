"""Issue 12 item 11: a top-level `status` is accepted for the kinds that have one in Kuma 2.14,
checked against the kind's status schema (schemas/status.json), kept on the resource and never
served; the other kinds keep refusing it with a message that says which kinds have one."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.commands.plan import run_plan
from reconciler.validate.schema import status_kinds
from tests.gitops.helpers import ALLOW_ALL, mesh
from tests.support import GitRepo, dataplane_yaml, problem_dicts, snapshot_of_text, validate_text

CONDITION = """\
status:
  conditions:
    - type: Ready
      status: "True"
      reason: Ready
      message: ""
"""

PEM = "".join(
    "          " + line + "\n"
    for line in (
        "-----BEGIN CERTIFICATE-----",
        "MIIBJjCBzKADAgECAgEBMAoGCCqGSM49BAMCMBIxEDAOBgNVBAMMB3Rlc3QtY2Ew",
        "HhcNMjUwMTAxMDAwMDAwWhcNMzUwMTAxMDAwMDAwWjASMRAwDgYDVQQDDAd0ZXN0",
        "LWNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEh7BsNkEFeFll/lGWtwtcDV3E",
        "IigHQqHrqbJPGFdfU8RBwif+VO9BbTzH5CPfcNX4n48kEKeGLx4sy70XBP4FgaMT",
        "MBEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAkDx8R5pdO8as",
        "8FCdCswORngcBkGt2wFOVkt3MozowtcCIQCRoZKrOgOFPlhNlA7XCEsTB5g+eTGL",
        "JsxsKNyqkutq4g==",
        "-----END CERTIFICATE-----",
    )
)

STATUS_BY_KIND = {
    "MeshService": (
        "spec:\n  selector:\n    dataplaneTags:\n      kuma.io/service: backend\n  ports:\n    - port: 80\n      targetPort: 8080\n"
        "      appProtocol: http\n",
        "status:\n  addresses:\n    - hostname: backend.svc.mesh.local\n      origin: HostnameGenerator\n"
        "      hostnameGeneratorRef: {coreName: local}\n  vips:\n    - ip: 241.0.0.7\n"
        "  dataplaneProxies: {connected: 1, healthy: 1, total: 2}\n  tls: {status: Ready}\n",
    ),
    "MeshExternalService": (
        "spec:\n  match: {type: HostnameGenerator, port: 80, protocol: http}\n  endpoints:\n    - address: example.com\n      port: 80\n",
        "status:\n  vip: {ip: 242.0.0.1}\n  addresses:\n    - hostname: example.extsvc.mesh.local\n",
    ),
    "Workload": ("spec: {}\n", "status:\n  dataplaneProxies: {connected: 1, healthy: 1, total: 1}\n"),
    "MeshTrust": (
        "spec:\n  trustDomain: example.org\n  caBundles:\n    - type: Pem\n      pem:\n        value: |-\n" + PEM,
        "status:\n  origin: {kri: kri_mid_default___ident_}\n",
    ),
    "MeshTrace": ("spec:\n  targetRef: {kind: Mesh}\n  default:\n    backends: []\n", CONDITION),
    "MeshMetric": ("spec:\n  targetRef: {kind: Mesh}\n  default: {}\n", CONDITION),
}


def _doc(kind: str, body: str, status: str) -> str:
    return f"type: {kind}\nname: one\nmesh: default\n{body}{status}"


def test_the_kinds_with_a_status_are_kumas() -> None:
    assert status_kinds() == {
        "MeshService",
        "MeshExternalService",
        "MeshMultiZoneService",
        "MeshIdentity",
        "MeshTrust",
        "Workload",
        "MeshOpenTelemetryBackend",
        "MeshAccessLog",
        "MeshMetric",
        "MeshTrace",
    }


@pytest.mark.parametrize("kind", sorted(STATUS_BY_KIND))
def test_a_status_written_by_kuma_is_accepted_and_kept(kind: str) -> None:
    body, status = STATUS_BY_KIND[kind]
    text = _doc(kind, body, status)
    report = validate_text(text)
    assert report.errors == (), problem_dicts(report.errors)
    resource = next(r for r in snapshot_of_text(text) if r.type == kind)
    assert resource.status is not None and resource.document()["status"] == resource.status
    without = next(r for r in snapshot_of_text(_doc(kind, body, "")) if r.type == kind)
    assert without.status is None and "status" not in without.document()
    assert without.digest != resource.digest  # a status change is a change (plan shows it)


def test_a_status_is_checked_against_the_kinds_status_schema() -> None:
    body, _ = STATUS_BY_KIND["MeshService"]
    text = _doc("MeshService", body, "status:\n  vips:\n    - ip: 241.0.0.7\n      ipp: 1\n  tls: {status: Maybe}\n")
    assert problem_dicts(validate_text(text).errors) == [
        {"line": 15, "pointer": "/status/vips/0/ipp", "message": 'unknown field "ipp"; did you mean "ip"? allowed fields: ip'},
        {"line": 16, "pointer": "/status/tls/status", "message": '"status" must be one of ["Ready", "NotReady"]'},
    ]
    condition = _doc("MeshTrace", STATUS_BY_KIND["MeshTrace"][0], "status:\n  conditions:\n    - type: Ready\n      status: Maybe\n")
    messages = {(p["pointer"], p["message"]) for p in problem_dicts(validate_text(condition).errors)}
    assert ("/status/conditions/0/status", '"status" must be one of ["True", "False", "Unknown"]') in messages
    assert ("/status/conditions/0/reason", "must be defined") in messages


@pytest.mark.parametrize(
    ("text", "line", "pointer"),
    [
        (
            "type: MeshTimeout\nname: t\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n"
            "      default: {idleTimeout: 1s}\nstatus: {}\n",
            9,
            "/status",
        ),
        ("type: Mesh\nname: default\nstatus:\n  conditions: []\n", 3, "/status"),
        (
            "apiVersion: kuma.io/v1alpha1\nkind: MeshRetry\nmetadata:\n  name: r\n  labels: {kuma.io/mesh: default}\n"
            "spec:\n  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: Mesh}\n      default: {tcp: {maxConnectAttempt: 2}}\n"
            "status:\n  conditions: []\n",
            11,
            "/status",
        ),
    ],
    ids=["policy", "proto-kind", "kubernetes-form"],
)
def test_kinds_without_a_status_refuse_it_saying_which_have_one(text: str, line: int, pointer: str) -> None:
    errors = problem_dicts(validate_text(text).errors)
    assert len(errors) == 1, errors
    assert errors[0]["line"] == line and errors[0]["pointer"] == pointer
    message = str(errors[0]["message"])
    assert "has no status in Kuma; only MeshAccessLog, MeshExternalService," in message and "remove `status:`" in message


BACKEND_MS = """\
type: MeshService
name: backend
mesh: default
spec:
  selector:
    dataplaneTags:
      kuma.io/service: backend
  ports:
    - port: 80
      targetPort: 19001
      appProtocol: http
"""

WRONG_STATUS = """\
status:
  vips:
    - ip: 10.99.99.99
  addresses:
    - hostname: elsewhere.example.com
      origin: HostnameGenerator
      hostnameGeneratorRef: {coreName: wrong}
  dataplaneProxies: {connected: 0, healthy: 0, total: 0}
  tls: {status: NotReady}
"""

WEB = dataplane_yaml("web", "web", 18080, 19000).replace(
    "  inbound:", "  outbound:\n    - port: 20001\n      backendRef: {kind: MeshService, name: backend, port: 80}\n  inbound:"
)


def test_a_wrong_status_changes_nothing_in_the_envoy_config(tmp_path: Path) -> None:
    """`plan` renders both revisions through the one render path: the MeshService changed
    (its status), no proxy did — the addresses, VIPs and counts Kuma writes are not served."""
    repo = GitRepo(tmp_path / "config")
    empty = repo.commit({"README.md": "mesh configuration\n"}, "empty")
    base = repo.commit(
        {
            "mesh.yaml": mesh(mtls=True),
            "allow.yaml": ALLOW_ALL,
            "backend.yaml": BACKEND_MS,
            "web.yaml": WEB,
            "backend-dp.yaml": dataplane_yaml("backend", "backend", 18090, 19001),
        }
    )
    head = repo.commit({"backend.yaml": BACKEND_MS + WRONG_STATUS}, "status as kumactl exports it")
    # The web proxy does use the MeshService: its outbound has a cluster for it.
    first = run_plan(str(repo.path), None, empty, base, envoy_check=False)
    web = next(p for p in first.proxies if p.node_id == "default.web")
    assert any(d.type == "CDS" and "backend" in d.name for d in web.resources)
    result = run_plan(str(repo.path), None, base, head, envoy_check=False)
    assert result.valid, problem_dicts(result.report.problems)
    assert result.diff is not None
    assert [c.key.name for c in result.diff.changed] == ["backend"]
    assert {f.pointer.split("/")[1] for f in result.diff.changed[0].fields} == {"status"}
    assert result.proxies == ()
