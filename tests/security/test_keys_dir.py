"""Replicas sharing one keys directory (`serve --keys-dir`): two real `reconciler serve`
processes with their own state directories serve the same mesh CA, verify as the same xDS
server, accept the same dataplane token and admin token, and never write into the keys
directory; a missing key stops the start (exit 2, the file named), and a commit needing a CA
the directory does not hold is rejected while the previous commit keeps serving."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from reconciler.xds.resources import SECRET
from tests.api.support import request
from tests.e2e.harness import ControlPlaneProcess, wait_until
from tests.gitops.helpers import mesh
from tests.security.support import AdsClient, dataplane_yaml
from tests.support import GitRepo

MESH_CA = "mesh_ca:secret:default"
IDENTITY = "identity_cert:secret:default"
PYTHON = sys.executable


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "reconciler", *args], capture_output=True, text=True, timeout=60)


def contents(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file of a directory with its bytes, mode and mtime: what "never written" compares."""
    return {p.name: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns) for p in directory.iterdir()}


class Replicas:
    def __init__(self, root: Path) -> None:
        self.repo = GitRepo(root / "repo")
        self.first = self.repo.commit({"mesh.yaml": mesh(mtls=True), "web.yaml": dataplane_yaml("web", "web")})
        self.keys = root / "keys"
        made = cli("keys", "init", "--out", str(self.keys), "--repo", str(self.repo.path))
        assert made.returncode == 0, made.stderr
        self.keys.chmod(0o500)  # as a Secret is mounted: read-only (root could still write, so contents are compared too)
        self.before = contents(self.keys)
        self.token = cli("token", "issue", "--keys-dir", str(self.keys), "--name", "web").stdout.strip()
        self.admin_token = (self.keys / "admin-token").read_text().strip()
        extra = ("--keys-dir", str(self.keys))
        self.cps = [ControlPlaneProcess(self.repo.path, root / f"state-{i}", extra=extra, shared_identity=False) for i in (1, 2)]

    def secrets(self, cp: ControlPlaneProcess) -> dict[str, secret_pb2.Secret]:
        """The SDS secrets a proxy `web` gets from `cp`, verifying it with the keys directory's xDS CA."""
        client = AdsClient(cp.xds, ca_pem=(self.keys / "xds-ca.crt").read_bytes())
        try:
            client.open("default.web", token=self.token, secrets=[IDENTITY, MESH_CA])
            client.wait_types(SECRET)
            wait_until(lambda: len(client.resources(SECRET)) >= 2, 10, what="both secrets")
            return {s.name: s for s in (secret_pb2.Secret.FromString(r.value) for r in client.resources(SECRET))}
        finally:
            client.close()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    r = Replicas(tmp_path_factory.mktemp("replicas"))
    try:
        for cp in r.cps:
            cp.start()
        for cp in r.cps:
            cp.wait_applied(r.first)
        yield r
    finally:
        for cp in r.cps:
            cp.stop()
        r.keys.chmod(0o700)


def test_both_replicas_serve_the_mesh_ca_of_the_keys_dir_to_a_proxy_with_one_token(replicas: Replicas) -> None:
    shared_ca = (replicas.keys / "ca.default.ca-1.crt").read_bytes()
    first, second = (replicas.secrets(cp) for cp in replicas.cps)
    assert first[MESH_CA].validation_context.trusted_ca.inline_bytes == shared_ca
    assert second[MESH_CA].validation_context.trusted_ca.inline_bytes == shared_ca
    ca = x509.load_pem_x509_certificate(shared_ca)
    for served in (first, second):  # each replica signs the proxy's certificate with the shared CA
        leaf = x509.load_pem_x509_certificate(served[IDENTITY].tls_certificate.certificate_chain.inline_bytes)
        leaf.verify_directly_issued_by(ca)


def test_each_replica_has_its_own_server_certificate_from_the_shared_xds_ca(replicas: Replicas) -> None:
    xds_ca = x509.load_pem_x509_certificate((replicas.keys / "xds-ca.crt").read_bytes())
    servers = [x509.load_pem_x509_certificates((cp.state_dir / "xds-tls" / "server.pem").read_bytes())[0] for cp in replicas.cps]
    for server in servers:
        server.verify_directly_issued_by(xds_ca)
    assert servers[0].serial_number != servers[1].serial_number
    assert not (replicas.cps[0].state_dir / "xds-tls" / "ca.pem").exists()  # no CA of its own


def test_both_replicas_accept_the_admin_token_of_the_keys_dir(replicas: Replicas) -> None:
    for cp in replicas.cps:
        assert request(cp.api, "POST", "/reconcile", token=replicas.admin_token).status == 200
        assert request(cp.api, "POST", "/reconcile", token="not-the-token").status == 401
        assert not (cp.state_dir / "admin-token").exists()


def test_nothing_is_written_into_the_keys_dir(replicas: Replicas) -> None:
    for cp in replicas.cps:  # after the replicas started, served and issued certificates
        assert cp.status() is not None
    assert contents(replicas.keys) == replicas.before


def test_a_mesh_whose_ca_is_not_in_the_keys_dir_is_rejected_and_the_last_commit_keeps_serving(replicas: Replicas) -> None:
    second = replicas.repo.commit({"other.yaml": mesh("other", mtls=True)}, message="a mesh without its CA in the Secret")
    for cp in replicas.cps:
        status = cp.wait_attempted(second)
        assert status["lastAppliedRevision"].endswith(replicas.first)
        message = status["lastFailure"]["message"]
        assert "mesh other uses the builtin CA of backend ca-1, which is not in the keys directory" in message
        assert "ca.other.ca-1.crt" in message and f"reconciler keys init --out {replicas.keys} --repo" in message
    assert (
        replicas.secrets(replicas.cps[0])[MESH_CA].validation_context.trusted_ca.inline_bytes
        == (replicas.keys / "ca.default.ca-1.crt").read_bytes()
    )
    assert contents(replicas.keys) == replicas.before


@pytest.mark.parametrize("missing", ["admin-token", "xds-ca.key", "dataplane-token.1.pem"])
def test_serve_with_a_key_missing_from_the_keys_dir_exits_2_naming_the_file(tmp_path: Path, missing: str) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"mesh.yaml": mesh()})
    keys = tmp_path / "keys"
    assert cli("keys", "init", "--out", str(keys)).returncode == 0
    (keys / missing).unlink()
    cp = ControlPlaneProcess(repo.path, tmp_path / "state", extra=("--keys-dir", str(keys)), shared_identity=False)
    cp.start(wait=False)
    assert cp.proc is not None
    try:
        code = cp.proc.wait(60)
    finally:
        cp.stop()
    output = cp.output()
    assert code == 2, output[-3000:]
    assert str(keys / missing) in output and f"reconciler keys init --out {keys}" in output
    assert "Traceback" not in output
    assert not (keys / missing).exists()
