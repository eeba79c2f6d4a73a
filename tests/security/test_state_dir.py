"""The state directory's private keys: written atomically with mode 0600, an unusable one stops
the start (exit 2, the file named, no traceback), a lost one is never silently replaced, and
status is not Ready while the control plane's own keys keep proxies out.

Starts that must fail run the real `reconciler serve` in a subprocess; the rest use the control
plane in this process with real gRPC (and TLS) and real git repositories.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.store import CaStore
from reconciler.ca.tokens import issue_token
from reconciler.ca.xds_tls import default_names, load_or_create
from reconciler.cli import cli
from reconciler.xds.resources import CLUSTER, LISTENER, SECRET
from tests.e2e.harness import ControlPlaneProcess, wait_until
from tests.gitops.helpers import mesh
from tests.security.support import AdsClient, LocalControlPlane, dataplane_yaml
from tests.support import GitRepo

MESH_CA = "mesh_ca:secret:default"
IDENTITY = "identity_cert:secret:default"


def ready(status: dict[str, Any]) -> dict[str, str]:
    conditions: list[dict[str, str]] = status["conditions"]
    (condition,) = [c for c in conditions if c["type"] == "Ready"]
    return condition


def make_state(state: Path) -> None:
    """A state directory as `serve` leaves it: token key, xDS CA and server key, mesh CA."""
    SigningKeys.open(state)
    load_or_create(state, default_names("127.0.0.1"))
    CaStore(state).builtin("default", "ca-1", rsa_bits=2048, validity=86400 * 365)


def refused_start(repo: Path, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`reconciler serve` that is expected to exit at once (a hang guard stops it otherwise)."""
    cp = ControlPlaneProcess(repo, state, shared_identity=False, extra=extra)
    logged = cp.log_path.stat().st_size if cp.log_path.exists() else 0
    cp.start(wait=False)
    assert cp.proc is not None
    try:
        code = cp.proc.wait(60)
    except subprocess.TimeoutExpired:
        cp.stop()
        raise AssertionError(f"serve did not refuse to start:\n{cp.output()[-3000:]}") from None
    cp.stop()
    return subprocess.CompletedProcess(cp.args, code, "", cp.log_path.read_bytes()[logged:].decode(errors="replace"))


def snapshot_files(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a directory)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


@pytest.fixture
def mtls_repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"mesh.yaml": mesh(mtls=True), "web.yaml": dataplane_yaml("web", "web")})
    return repo


# -- written atomically, mode 0600 --------------------------------------------------------------
def test_a_name_planted_in_a_key_directory_never_receives_a_key(tmp_path: Path) -> None:
    """Whoever could create files in the state directory must not get the key by planting a
    symlink where a temporary file would go: temporaries get fresh, exclusive names."""
    state, outside = tmp_path / "state", tmp_path / "outside"
    outside.mkdir()
    ca_dir = state / "ca" / "default" / "ca-1"
    ca_dir.mkdir(parents=True)
    planted = {
        ca_dir / "ca.key.tmp": outside / "stolen-ca-key",
        ca_dir / "ca.crt.tmp": outside / "stolen-ca-crt",
        state / "ca" / "default" / "history.tmp": outside / "clobbered",
    }
    for link, target in planted.items():
        target.write_bytes(b"")
        link.symlink_to(target)
    store = CaStore(state)
    authority = store.builtin("default", "ca-1", rsa_bits=2048, validity=86400)
    store.activate("default", authority)
    assert {t.name: t.read_bytes() for t in planted.values()} == {"stolen-ca-key": b"", "stolen-ca-crt": b"", "clobbered": b""}
    key = ca_dir / "ca.key"
    assert not key.is_symlink() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes()


def _builtin_fingerprint(state: str, barrier: Any) -> str:
    barrier.wait()
    return CaStore(state).builtin("default", "ca-1", rsa_bits=2048, validity=86400).fingerprint


def test_concurrent_first_uses_of_a_builtin_ca_agree_on_one_ca(tmp_path: Path) -> None:
    """`serve` and `reconcile --out --state-dir` may make a mesh's CA at the same moment: both
    must end up with the same CA, and its certificate and key must belong together."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        barrier = manager.Barrier(4)
        fingerprints = pool.starmap(_builtin_fingerprint, [(str(tmp_path), barrier)] * 4, chunksize=1)
    assert len(set(fingerprints)) == 1, fingerprints
    assert CaStore(tmp_path).builtin("default", "ca-1", rsa_bits=2048, validity=86400).fingerprint == fingerprints[0]
    assert sorted(p.name for p in (tmp_path / "ca" / "default" / "ca-1").iterdir()) == ["ca.crt", "ca.key"]


def test_every_private_key_of_the_state_directory_is_0600_and_no_temporary_is_left(tmp_path: Path) -> None:
    make_state(tmp_path)
    SigningKeys.open(tmp_path).add_key()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    private = {str(p.relative_to(tmp_path)) for p in files if b"PRIVATE KEY" in p.read_bytes()}
    assert private == {"dataplane-tokens/1.pem", "dataplane-tokens/2.pem", "xds-tls/ca.pem", "xds-tls/server.pem", "ca/default/ca-1/ca.key"}
    assert {f: oct(stat.S_IMODE((tmp_path / f).stat().st_mode)) for f in private} == dict.fromkeys(private, "0o600")
    for directory in ("dataplane-tokens", "ca/default/ca-1"):
        assert stat.S_IMODE((tmp_path / directory).stat().st_mode) == 0o700
    assert [p.name for p in files if p.name.startswith(".tmp")] == []


# -- an unusable key file stops the start --------------------------------------------------------
def _garbage(path: Path) -> None:
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")


def _ec_key(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()  # unreadable as a file, for root too


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _other_xds_ca(path: Path) -> None:
    other = path.parent.parent.parent / "other"
    load_or_create(other, ("localhost",))
    path.write_bytes((other / "xds-tls" / "ca.pem").read_bytes())


def _other_mesh_ca_key(path: Path) -> None:
    other = CaStore(path.parent.parent.parent.parent.parent / "other").builtin("default", "ca-1", rsa_bits=2048, validity=86400)
    path.write_bytes(other.key_pem())


UNUSABLE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "token key is not a key": ("dataplane-tokens/1.pem", _garbage, "not a PEM private key"),
    "token key is not RSA": ("dataplane-tokens/1.pem", _ec_key, "not an RSA private key"),
    "token key is a directory": ("dataplane-tokens/1.pem", _directory, "Is a directory"),
    "xds CA is cut short": ("xds-tls/ca.pem", _truncated, "certificate and private key"),
    "xds CA is another CA than proxies were given": ("xds-tls/ca.pem", _other_xds_ca, "not the CA certificate in"),
    "xds server key is not a key": ("xds-tls/server.pem", _garbage, "certificate and private key"),
    "mesh CA key is not a key": ("ca/default/ca-1/ca.key", _garbage, "not a PEM private key"),
    "mesh CA key is another CA's": ("ca/default/ca-1/ca.key", _other_mesh_ca_key, "does not match"),
}


@pytest.mark.parametrize("case", list(UNUSABLE))
def test_serve_refuses_to_start_on_an_unusable_key_file_and_changes_nothing(case: str, tmp_path: Path, mtls_repo: GitRepo) -> None:
    rel, spoil, why = UNUSABLE[case]
    state = tmp_path / "state"
    make_state(state)
    spoil(state / rel)
    before = snapshot_files(state)
    result = refused_start(mtls_repo.path, state)
    assert result.returncode == 2, result.stderr
    assert f"Error: cannot use {state / rel}: " in result.stderr
    assert why in result.stderr
    assert "Traceback" not in result.stderr
    after = snapshot_files(state)
    assert {k: v for k, v in after.items() if k != "control-plane.log"} == before


def test_token_issue_refuses_an_unusable_signing_key(tmp_path: Path) -> None:
    SigningKeys.open(tmp_path)
    _garbage(tmp_path / "dataplane-tokens" / "1.pem")
    result = CliRunner().invoke(cli, ["token", "issue", "--state-dir", str(tmp_path), "--name", "web"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert f"Error: cannot use {tmp_path / 'dataplane-tokens' / '1.pem'}: not a PEM private key" in result.output
    assert sorted(p.name for p in (tmp_path / "dataplane-tokens").iterdir()) == ["1.pem", "1.pub"]


# -- a lost key is refused, or rotated on request ----------------------------------------------
def test_an_issued_token_keeps_working_across_a_restart_and_a_lost_signing_key_stops_the_start(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit({"mesh.yaml": mesh(), "web.yaml": dataplane_yaml("web", "web")})
    state = tmp_path / "state"
    cp = ControlPlaneProcess(repo.path, state, shared_identity=False)

    def admitted(token: str) -> None:
        assert cp.ca_cert is not None
        client = AdsClient(cp.xds, ca_pem=cp.ca_cert.read_bytes())
        try:
            client.open("default.web", token=token)
            client.wait_types(LISTENER, CLUSTER)
        finally:
            client.close()

    try:
        cp.start()
        cp.wait_applied(sha)
        token = cp.issue_token("web")
        admitted(token)
        cp.stop()
        cp.start()
        cp.wait_applied(sha)
        admitted(token)
    finally:
        cp.stop()
    (state / "dataplane-tokens" / "1.pem").unlink()
    before = snapshot_files(state / "dataplane-tokens")
    result = refused_start(repo.path, state)
    assert result.returncode == 2, result.stderr
    assert f"Error: cannot use {state / 'dataplane-tokens' / '1.pem'}: signing key 1 is missing" in result.stderr
    assert "--rotate-missing-keys" in result.stderr and "Traceback" not in result.stderr
    issue = subprocess.run(
        [sys.executable, "-m", "reconciler", "token", "issue", "--state-dir", str(state), "--name", "web"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (issue.returncode, issue.stdout) == (2, ""), issue.stderr
    assert "signing key 1 is missing" in issue.stderr
    assert snapshot_files(state / "dataplane-tokens") == before


def test_rotating_a_lost_signing_key_is_explicit_and_status_says_whose_tokens_stopped(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit({"mesh.yaml": mesh(), "web.yaml": dataplane_yaml("web", "web")})
    state = tmp_path / "state"
    old = issue_token(SigningKeys.open(state), mesh="default", name="web")
    (state / "dataplane-tokens" / "1.pem").unlink()
    cp = LocalControlPlane(repo.path, state, rotate_missing_keys=True)
    try:
        cp.wait_applied(sha)
        condition = ready(cp.cp.store.status())
        assert (condition["status"], condition["reason"]) == ("False", "KeysRotated")
        assert "signing key 1" in condition["message"] and "reconciler token issue" in condition["message"]
        client = AdsClient(cp.target, ca_pem=cp.ca_pem)
        client.open("default.web", token=old)
        error = client.wait_end()
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED and "KID 1" in (error.details() or "")
        client.close()
        new = issue_token(SigningKeys.open(state), mesh="default", name="web")
        client = AdsClient(cp.target, ca_pem=cp.ca_pem)
        client.open("default.web", token=new)
        client.wait_types(LISTENER, CLUSTER)
        client.close()
    finally:
        cp.stop()
    assert sorted(p.name for p in (state / "dataplane-tokens").iterdir()) == ["1.lost", "2.pem", "2.pub"]
    again = LocalControlPlane(repo.path, state)  # the loss was acknowledged: no flag needed now
    try:
        again.wait_applied(sha)
        assert ready(again.cp.store.status())["status"] == "True"
    finally:
        again.stop()


def test_a_lost_mesh_ca_key_stops_the_start_and_rotation_keeps_the_old_ca_trusted(tmp_path: Path, mtls_repo: GitRepo) -> None:
    state = tmp_path / "state"
    sha = mtls_repo.commit(message="serve it")
    first = LocalControlPlane(mtls_repo.path, state, dataplane_auth="none", xds_tls="none")
    first.wait_applied(sha)
    first.stop()
    ca_dir = state / "ca" / "default" / "ca-1"
    old_ca = (ca_dir / "ca.crt").read_bytes()
    (ca_dir / "ca.key").unlink()
    result = refused_start(mtls_repo.path, state, "--dataplane-auth", "none", "--xds-tls", "none")
    assert result.returncode == 2, result.stderr
    assert f"Error: cannot use {ca_dir / 'ca.key'}: the key of the builtin CA ca-1 of mesh default is missing" in result.stderr
    assert "--rotate-missing-keys" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in ca_dir.iterdir()) == ["ca.crt"]

    cp = LocalControlPlane(mtls_repo.path, state, dataplane_auth="none", xds_tls="none", rotate_missing_keys=True)
    try:
        cp.wait_applied(sha)
        assert ready(cp.cp.store.status())["reason"] == "KeysRotated"
        new_ca = (ca_dir / "ca.crt").read_bytes()
        assert new_ca != old_ca and (ca_dir / "ca.key").exists()
        client = AdsClient(cp.target)
        client.open("default.web", secrets=[IDENTITY, MESH_CA])
        client.wait_types(SECRET)
        wait_until(lambda: len(client.resources(SECRET)) >= 2, 10, what="both secrets")
        secrets = {s.name: s for s in (secret_pb2.Secret.FromString(r.value) for r in client.resources(SECRET))}
        client.close()
    finally:
        cp.stop()
    trusted = secrets[MESH_CA].validation_context.trusted_ca.inline_bytes
    assert old_ca in trusted and new_ca in trusted  # proxies on old certificates keep talking
    leaf = x509.load_pem_x509_certificate(secrets[IDENTITY].tls_certificate.certificate_chain.inline_bytes)
    assert leaf.issuer == x509.load_pem_x509_certificate(new_ca).subject
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(new_ca))


def test_a_retired_mesh_ca_stays_trusted_across_a_restart(tmp_path: Path) -> None:
    """After a CA switch, a restart must not forget the retired CA: proxies still on its
    certificates are trusted until they have new ones."""
    store = CaStore(tmp_path)
    old = store.builtin("default", "ca-1", rsa_bits=2048, validity=86400)
    new = store.builtin("default", "ca-2", rsa_bits=2048, validity=86400)
    store.activate("default", old, now=1000.0)
    store.activate("default", new, now=2000.0)
    restarted = CaStore(tmp_path)
    restarted.activate("default", restarted.builtin("default", "ca-2", rsa_bits=2048, validity=86400), now=3000.0)
    assert [(r.fingerprint, r.retired_at) for r in CaStore(tmp_path).retired("default")] == [(old.fingerprint, 2000.0)]


def test_a_rotated_mesh_ca_stays_trusted_even_when_history_never_recorded_it(tmp_path: Path) -> None:
    """A CA made by `reconcile --out --state-dir` has no history.json entry; rotating it
    still keeps its certificate trusted for a while."""
    old = CaStore(tmp_path).builtin("default", "ca-1", rsa_bits=2048, validity=86400)
    (tmp_path / "ca" / "default" / "ca-1" / "ca.key").unlink()
    (rotated,) = CaStore(tmp_path).check_keys(rotate_missing=True)
    assert rotated.startswith("the builtin CA ca-1 of mesh default lost its ca.key")
    store = CaStore(tmp_path)
    new = store.builtin("default", "ca-1", rsa_bits=2048, validity=86400)
    store.activate("default", new)
    assert new.fingerprint != old.fingerprint
    assert [r.fingerprint for r in store.retired("default")] == [old.fingerprint]
    assert CaStore(tmp_path).check_keys() == []


def test_a_mesh_ca_key_lost_while_serving_rejects_the_commit_that_needs_it(tmp_path: Path) -> None:
    """A CA made by another process (`reconcile --out --state-dir`) whose key is then lost is
    found at build time: the commit is rejected, nothing is regenerated, the last good serves."""
    repo = GitRepo(tmp_path / "repo")
    good = repo.commit({"mesh.yaml": mesh(), "web.yaml": dataplane_yaml("web", "web")})
    state = tmp_path / "state"
    cp = LocalControlPlane(repo.path, state, dataplane_auth="none", xds_tls="none")
    try:
        cp.wait_applied(good)
        CaStore(state).builtin("default", "ca-1", rsa_bits=2048, validity=86400)
        key = state / "ca" / "default" / "ca-1" / "ca.key"
        key.unlink()
        bad = repo.commit({"mesh.yaml": mesh(mtls=True)}, "mTLS on")

        def attempted() -> dict[str, Any] | None:
            status = cp.cp.store.status()
            return status if status["lastAttemptedRevision"].endswith(bad) else None

        status = wait_until(attempted, 15, what="the mTLS commit attempted")
        condition = ready(status)
        assert condition["status"] == "False"
        assert f"cannot use {key}: the key of the builtin CA ca-1 of mesh default is missing" in condition["message"]
        assert "--rotate-missing-keys" in condition["message"]
        assert status["lastAppliedRevision"].endswith(good)
        assert not key.exists()
    finally:
        cp.stop()


def test_a_lost_xds_ca_key_stops_the_start_and_rotation_says_proxies_need_the_new_certificate(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit({"mesh.yaml": mesh(), "web.yaml": dataplane_yaml("web", "web")})
    state = tmp_path / "state"
    old_ca = load_or_create(state, ("localhost",)).ca_cert_pem
    (state / "xds-tls" / "ca.pem").unlink()
    result = refused_start(repo.path, state, "--dataplane-auth", "none")
    assert result.returncode == 2, result.stderr
    assert f"Error: cannot use {state / 'xds-tls' / 'ca.pem'}: the xDS CA key is missing" in result.stderr
    assert "--rotate-missing-keys" in result.stderr and "Traceback" not in result.stderr
    assert not (state / "xds-tls" / "ca.pem").exists()

    cp = LocalControlPlane(repo.path, state, dataplane_auth="none", rotate_missing_keys=True)
    try:
        cp.wait_applied(sha)
        condition = ready(cp.cp.store.status())
        assert (condition["status"], condition["reason"]) == ("False", "KeysRotated")
        assert str(state / "xds-tls" / "ca.crt") in condition["message"]
        assert cp.ca_pem != old_ca
        stale = AdsClient(cp.target, ca_pem=old_ca)
        stale.open("default.web")
        assert stale.wait_end().code() == grpc.StatusCode.UNAVAILABLE
        stale.close()
        fresh = AdsClient(cp.target, ca_pem=cp.ca_pem)
        fresh.open("default.web")
        fresh.wait_types(LISTENER, CLUSTER)
        fresh.close()
    finally:
        cp.stop()


# -- status is not Ready while the control plane's own keys keep proxies out -------------------
def test_status_is_not_ready_while_a_signing_key_cannot_be_used_and_strangers_cannot_flip_it(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit({"mesh.yaml": mesh(), "web.yaml": dataplane_yaml("web", "web")})
    state = tmp_path / "state"
    cp = LocalControlPlane(repo.path, state)
    try:
        cp.wait_applied(sha)
        elsewhere = SigningKeys.open(tmp_path / "elsewhere")
        elsewhere.add_key()
        elsewhere.add_key()  # key 3: unknown here, so the control plane looks at its key directory again
        for token in ("not-a-token", issue_token(elsewhere, mesh="default", name="web")):
            client = AdsClient(cp.target, ca_pem=cp.ca_pem)
            client.open("default.web", token=token)
            assert client.wait_end().code() == grpc.StatusCode.UNAUTHENTICATED
            client.close()
        assert ready(cp.cp.store.status())["status"] == "True"

        # A second key arrives broken (a bad copy into a shared key directory).
        broken = state / "dataplane-tokens" / "2.pem"
        _garbage(broken)
        os.chmod(broken, 0o600)
        condition = ready(cp.cp.store.status())
        assert (condition["status"], condition["reason"]) == ("False", "SigningKeyUnusable")
        assert f"cannot use {broken}: not a PEM private key" in condition["message"]
        assert "key 2" in condition["message"]

        broken.unlink()
        SigningKeys.open(tmp_path / "spare").add_key()  # a good key 2, made elsewhere
        os.replace(tmp_path / "spare" / "dataplane-tokens" / "2.pem", broken)
        assert ready(cp.cp.store.status())["status"] == "True"
        client = AdsClient(cp.target, ca_pem=cp.ca_pem)
        client.open("default.web", token=issue_token(SigningKeys.open(state), mesh="default", name="web"))
        client.wait_types(LISTENER, CLUSTER)
        client.close()
    finally:
        cp.stop()


def test_a_provided_ca_that_breaks_while_serving_makes_status_not_ready_until_it_is_back(tmp_path: Path) -> None:
    # A renewal (or a proxy registering) rebuilds the applied revision. When the CA file it
    # needs is gone, proxies keep their config but their certificates will not be renewed:
    # before, that was one log line and status said Ready.
    from reconciler.ca.authority import generate_root

    ca = generate_root("default", "files", rsa_bits=2048)
    cert, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    cert.write_bytes(ca.cert_pem)
    key.write_bytes(ca.key_pem())
    provided = f"""\
type: Mesh
name: default
skipCreatingInitialPolicies: ["*"]
mtls:
  enabledBackend: files
  backends:
    - name: files
      type: provided
      conf:
        cert: {{file: {cert}}}
        key: {{file: {key}}}
"""
    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit({"mesh.yaml": provided, "web.yaml": dataplane_yaml("web", "web")})
    cp = LocalControlPlane(repo.path, tmp_path / "state", dataplane_auth="none", xds_tls="none")
    try:
        cp.wait_applied(sha)
        assert ready(cp.cp.store.status())["status"] == "True"
        key.rename(tmp_path / "aside.key")
        cp.call(cp.cp.rebuild("certificate renewal"))
        condition = ready(cp.cp.store.status())
        assert (condition["status"], condition["reason"]) == ("False", "RebuildFailed")
        assert f"cannot read {key}" in condition["message"] and "certificates are not renewed" in condition["message"]
        (tmp_path / "aside.key").rename(key)  # the retry rebuilds, and Ready comes back
        wait_until(lambda: ready(cp.cp.store.status())["status"] == "True", 30, what="Ready again after the retry")
    finally:
        cp.stop()
