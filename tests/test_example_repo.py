"""example-repo/: the configuration repository the demo runs and the docs point to.

It must validate clean both as files on disk and as a commit, hold at least one resource of
every kind the reconciler knows, and keep to its port plan (README.md), because the demo
runs every dataplane of it on one machine.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from reconciler.cli import cli
from reconciler.demo_telemetry import prometheus_targets, zipkin_ports
from reconciler.kinds import kind_names
from reconciler.model import Resource, Snapshot
from reconciler.source.git import GitSource, read_directory
from reconciler.validate import Report, validate
from tests.support import GitRepo

EXAMPLE_REPO = Path(__file__).resolve().parents[1] / "example-repo"

EXPECTED_WARNINGS: list[str] = []
"""Warnings the example may give, as `file: pointer: message`. None: it uses no deprecated form."""

LOOPBACK = "127.0.0.1"
PLAN = {
    "inbound": range(15001, 15100),
    "outbound": range(16001, 16100),
    "zone proxy": range(17001, 17100),
    "application": range(18001, 18100),
    "gateway listener": range(18001, 18100),
    "admin": range(19001, 19100),
    "zone proxy admin": range(19101, 19200),
    "metrics endpoint": range(19201, 19300),
    "trace receiver": range(19401, 19500),
}
"""The port plan of example-repo/README.md: what binds a port → the range it comes from."""


@pytest.fixture(scope="module")
def worktree() -> Snapshot:
    return read_directory(EXAMPLE_REPO)


@pytest.fixture(scope="module")
def worktree_report(worktree: Snapshot) -> Report:
    return validate(worktree)


def _rendered(report: Report) -> str:
    return "\n".join(p.render() for p in report.problems)


def _warnings(report: Report) -> list[str]:
    return [f"{p.file}: {p.pointer}: {p.message}" for p in report.warnings]


# -- validation -------------------------------------------------------------------------------
def test_example_repo_work_tree_validates_without_errors(worktree_report: Report) -> None:
    assert worktree_report.errors == (), _rendered(worktree_report)
    assert worktree_report.valid


def test_example_repo_gives_no_warnings_beyond_the_expected_ones(worktree_report: Report) -> None:
    assert _warnings(worktree_report) == EXPECTED_WARNINGS


def test_example_repo_validates_the_same_once_committed(tmp_path: Path, worktree: Snapshot) -> None:
    repo = GitRepo(tmp_path / "config")
    shutil.copytree(EXAMPLE_REPO, repo.path, dirs_exist_ok=True)
    sha = repo.commit(message="seed from example-repo")

    snapshot = GitSource(repo.path).snapshot("HEAD")
    report = validate(snapshot)

    assert report.revision == sha
    assert report.errors == (), _rendered(report)
    assert _warnings(report) == EXPECTED_WARNINGS
    assert sorted(r.key for r in snapshot) == sorted(r.key for r in worktree)


def test_validate_command_accepts_the_example_repo() -> None:
    result = CliRunner().invoke(cli, ["validate", "--repo", str(EXAMPLE_REPO), "--worktree"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.strip().startswith("valid: ")


def test_example_repo_has_a_resource_of_every_kind(worktree: Snapshot) -> None:
    counts = Counter(r.type for r in worktree)
    missing = [k for k in kind_names() if counts[k] == 0]
    assert missing == []


def test_every_document_is_explained_by_a_comment() -> None:
    uncommented = []
    for path in sorted(EXAMPLE_REPO.rglob("*.y*ml")):
        for number, preamble in enumerate(_document_preambles(path.read_text(encoding="utf-8"))):
            if not any(line.lstrip().startswith("#") for line in preamble):
                uncommented.append(f"{path.relative_to(EXAMPLE_REPO)} document {number}")
    assert uncommented == []


def _document_preambles(text: str) -> Iterator[list[str]]:
    """The lines of each document before its first key: where its explanation belongs."""
    preamble: list[str] = []
    seen_key = False
    for line in text.splitlines():
        if line.startswith("---"):
            if seen_key:
                yield preamble
            preamble, seen_key = [], False
        elif not seen_key and re.match(r"^[A-Za-z]", line):
            seen_key = True
        elif not seen_key:
            preamble.append(line)
    if seen_key:
        yield preamble


# -- what the demo relies on ----------------------------------------------------------------------
def _of_type(snapshot: Snapshot, type_: str) -> dict[str, Resource]:
    return {r.name: r for r in snapshot if r.type == type_}


def _service_tags(dp: Resource) -> list[Mapping[str, Any]]:
    return [i.get("tags") or {} for i in dp.spec["networking"].get("inbound") or ()]


def test_one_mesh_with_builtin_mtls_starting_permissive(worktree: Snapshot) -> None:
    meshes = _of_type(worktree, "Mesh")
    assert list(meshes) == ["default"]
    mtls = meshes["default"].spec["mtls"]
    (backend,) = [b for b in mtls["backends"] if b["name"] == mtls["enabledBackend"]]
    assert backend["type"] == "builtin"
    assert backend["mode"] == "PERMISSIVE"
    assert backend["dpCert"]["rotation"]["expiration"]
    assert {r.mesh for r in worktree if r.mesh} == {"default"}


def test_demo_services_have_the_instances_the_demo_starts(worktree: Snapshot) -> None:
    by_service: dict[str, list[Mapping[str, Any]]] = {}
    for dp in _of_type(worktree, "Dataplane").values():
        for tags in _service_tags(dp):
            by_service.setdefault(tags["kuma.io/service"], []).append(tags)
    assert sorted(by_service) == ["backend", "frontend", "orders", "redis"]
    assert sorted(t["version"] for t in by_service["backend"]) == ["v1", "v2"]
    assert [len(by_service[s]) for s in ("frontend", "orders", "redis")] == [1, 1, 1]
    assert {t["kuma.io/protocol"] for s in ("frontend", "backend", "orders") for t in by_service[s]} == {"http"}
    assert by_service["redis"][0]["kuma.io/protocol"] == "tcp"


def test_edge_gateway_is_a_builtin_gateway_with_http_and_https_listeners(worktree: Snapshot) -> None:
    dp = _of_type(worktree, "Dataplane")["edge-gateway"]
    gateway = dp.spec["networking"]["gateway"]
    assert gateway["type"] == "BUILTIN"
    assert gateway["tags"]["kuma.io/service"] == "edge-gateway"
    mesh_gateway = _of_type(worktree, "MeshGateway")["edge-gateway"]
    assert [s["match"]["kuma.io/service"] for s in mesh_gateway.spec["selectors"]] == ["edge-gateway"]
    listeners = {listener["protocol"]: listener for listener in mesh_gateway.spec["conf"]["listeners"]}
    assert listeners["HTTP"]["port"] == 18080
    secret_names = [c["secret"] for c in listeners["HTTPS"]["tls"]["certificates"]]
    assert all(name in _of_type(worktree, "Secret") for name in secret_names)


def test_gateway_secret_is_one_private_key_then_a_certificate_for_example_local(worktree: Snapshot) -> None:
    secret = _of_type(worktree, "Secret")["edge-gateway-tls"]
    pem = base64.b64decode(secret.spec["data"], validate=True).decode("ascii")
    blocks = re.findall(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----\n?", pem, re.S)
    assert blocks[0].endswith("PRIVATE KEY")
    assert blocks[1:] and all(b == "CERTIFICATE" for b in blocks[1:])
    key_pem, _, chain = pem.partition("-----BEGIN CERTIFICATE-----")
    load_pem_private_key(key_pem.encode(), password=None)
    leaf = x509.load_pem_x509_certificate(("-----BEGIN CERTIFICATE-----" + chain).encode())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "*.example.local" in names


# -- the port plan --------------------------------------------------------------------------------
def _bound_ports(snapshot: Snapshot) -> Iterator[tuple[str, str, str, int]]:
    """(what binds it, resource name, address, port) for every port the demo binds."""
    for dp in _of_type(snapshot, "Dataplane").values():
        net = dp.spec["networking"]
        address = net["address"]
        yield "admin", dp.name, LOOPBACK, net["admin"]["port"]
        for inbound in net.get("inbound") or ():
            yield "inbound", dp.name, inbound.get("address", address), inbound["port"]
            yield "application", dp.name, inbound.get("serviceAddress", address), inbound["servicePort"]
        for outbound in net.get("outbound") or ():
            yield "outbound", dp.name, outbound.get("address", LOOPBACK), outbound["port"]
    for gateway in _of_type(snapshot, "MeshGateway").values():
        for listener in gateway.spec["conf"]["listeners"]:
            yield "gateway listener", gateway.name, LOOPBACK, listener["port"]
    for type_ in ("ZoneIngress", "ZoneEgress"):
        for proxy in _of_type(snapshot, type_).values():
            net = proxy.spec["networking"]
            yield "zone proxy", proxy.name, net["address"], net["port"]
            yield "zone proxy admin", proxy.name, LOOPBACK, net["admin"]["port"]
    for target in prometheus_targets(snapshot):
        yield "metrics endpoint", target.dataplane, target.address, target.port
    for port in zipkin_ports(snapshot):
        yield "trace receiver", "the demo", LOOPBACK, port


def test_every_dataplane_runs_on_loopback_with_its_own_admin_port(worktree: Snapshot) -> None:
    for dp in _of_type(worktree, "Dataplane").values():
        net = dp.spec["networking"]
        assert net["address"] == LOOPBACK, dp.name
        assert isinstance((net.get("admin") or {}).get("port"), int), f"{dp.name} sets no networking.admin.port"
    for type_ in ("ZoneIngress", "ZoneEgress"):
        for proxy in _of_type(worktree, type_).values():
            assert proxy.spec["networking"]["address"] == LOOPBACK, proxy.name


def test_every_bound_port_comes_from_its_range_in_the_plan(worktree: Snapshot) -> None:
    outside = [
        f"{name}: {what} port {port} not in {PLAN[what].start}-{PLAN[what].stop - 1}"
        for what, name, _, port in _bound_ports(worktree)
        if port not in PLAN[what]
    ]
    assert outside == []


def test_no_two_things_bind_the_same_port(worktree: Snapshot) -> None:
    owners: dict[tuple[str, int], list[str]] = {}
    for what, name, address, port in _bound_ports(worktree):
        owners.setdefault((address, port), []).append(f"{name} {what}")
    clashes = {f"{address}:{port}": who for (address, port), who in owners.items() if len(who) > 1}
    assert clashes == {}


def test_port_plan_covers_every_demo_proxy(worktree: Snapshot) -> None:
    kinds = Counter(what for what, *_ in _bound_ports(worktree))
    assert kinds["admin"] == len(_of_type(worktree, "Dataplane"))
    assert kinds["inbound"] == kinds["application"] == 5
    assert kinds["outbound"] == 3
    assert kinds["gateway listener"] == 2
    # Every proxy has its MeshMetric Prometheus endpoint; MeshTrace sends to the demo's receiver.
    assert kinds["metrics endpoint"] == kinds["admin"]
    assert kinds["trace receiver"] == 1
