"""`serve --repo URL`: a mirror in the state directory, credentials from files or the environment.

Remotes are real: a `file://` URL of a bare repository, and `git http-backend` behind a local
HTTP(S) server that wants a token as basic auth. Secrets must never show in the log or status.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconciler.source.remote import (
    CredentialError,
    GitCredentials,
    is_remote,
    make_callbacks,
    redact,
    redact_url,
    use_known_hosts,
    verify_webhook,
    webhook_ref,
)
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, free_port, wait_until
from tests.gitops.githttp import GitHttpServer, http_backend
from tests.gitops.helpers import mesh
from tests.gitops.serving import as_admin, run_cli, ssh_key

TOKEN = "ghp_t0ken-that-must-never-be-logged"


# -- credentials ------------------------------------------------------------------------------
def test_token_comes_from_the_file_else_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    creds = GitCredentials.load(token_file=str(token_file), env={"RECONCILER_GIT_TOKEN": "from-env"})
    assert (creds.username, creds.token) == ("x-access-token", TOKEN)
    assert GitCredentials.load(env={"RECONCILER_GIT_TOKEN": "from-env"}).token == "from-env"
    assert GitCredentials.load(username="oauth2", env={}).token is None
    assert TOKEN not in repr(creds) and TOKEN not in creds.describe()
    assert creds.describe() == "https token (user x-access-token)"
    token_file.write_text("\n")
    with pytest.raises(CredentialError, match="is empty"):
        GitCredentials.load(token_file=str(token_file))
    with pytest.raises(CredentialError, match="cannot read the git token file"):
        GitCredentials.load(token_file=str(tmp_path / "missing"))


def test_callbacks_answer_with_the_configured_credential_kind(tmp_path: Path) -> None:
    key = ssh_key(tmp_path, "deploy")
    creds = GitCredentials.load(
        token_file=None, username="bot", ssh_key=str(key), env={"RECONCILER_GIT_TOKEN": TOKEN, "RECONCILER_GIT_SSH_PASSPHRASE": "pw"}
    )
    kinds = pygit2.enums.CredentialType
    userpass = make_callbacks(creds).credentials("https://git.example.com/x.git", None, kinds.USERPASS_PLAINTEXT)
    assert isinstance(userpass, pygit2.UserPass) and userpass.credential_tuple == ("bot", TOKEN)
    keypair = make_callbacks(creds).credentials("ssh://git@git.example.com/x.git", "git", kinds.SSH_KEY | kinds.USERPASS_PLAINTEXT)
    assert isinstance(keypair, pygit2.Keypair)
    assert keypair.credential_tuple == ("git", f"{key}.pub", str(key), "pw")
    # libgit2 asks again after a refusal: the third refusal ends the fetch, without the secret.
    callbacks = make_callbacks(creds)
    for _ in range(3):
        callbacks.credentials("https://bot:x@git.example.com/x.git", None, kinds.USERPASS_PLAINTEXT)
    with pytest.raises(pygit2.GitError) as refused:
        callbacks.credentials("https://bot:x@git.example.com/x.git", None, kinds.USERPASS_PLAINTEXT)
    assert str(refused.value) == "authentication failed for https://***@git.example.com/x.git: the credentials were refused"
    with pytest.raises(pygit2.GitError, match="asks for credentials"):
        make_callbacks(GitCredentials()).credentials("https://git.example.com/x.git", None, kinds.USERPASS_PLAINTEXT)
    # An unknown SSH host key or an unverified certificate is refused.
    assert make_callbacks(creds).certificate_check(None, True, b"git.example.com") is True
    with pytest.raises(pygit2.GitError, match="git.example.com is not trusted"):
        make_callbacks(creds).certificate_check(None, False, b"git.example.com")


def test_known_hosts_file_becomes_the_one_libgit2_checks(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    before = pygit2.settings.homedir
    try:
        use_known_hosts(str(known), tmp_path / "ssh-home")
        assert pygit2.settings.homedir == str(tmp_path / "ssh-home")
        assert (tmp_path / "ssh-home" / ".ssh" / "known_hosts").read_text() == known.read_text()
    finally:
        pygit2.settings.homedir = before
    with pytest.raises(CredentialError, match="known hosts file"):
        GitCredentials.load(known_hosts=str(tmp_path / "missing"), env={})


def test_secrets_are_redacted_from_messages() -> None:
    assert redact_url("https://user:pw@host/x.git and ssh://git@host/y") == "https://***@host/x.git and ssh://***@host/y"
    assert redact(f"fetch failed: token {TOKEN} refused", (TOKEN,)) == "fetch failed: token *** refused"
    assert is_remote("git@github.com:org/repo.git") and is_remote("https://h/x.git") and is_remote("file:///tmp/x")
    assert not is_remote(".")


def test_webhook_proofs_of_github_and_gitlab() -> None:
    body = b'{"ref":"refs/heads/main"}'
    signature = "sha256=" + __import__("hmac").new(b"k", body, "sha256").hexdigest()
    assert verify_webhook({"x-hub-signature-256": signature}, body, b"k") == "github"
    assert verify_webhook({"x-hub-signature-256": signature}, body + b" ", b"k") is None
    assert verify_webhook({"x-gitlab-token": "k"}, body, b"k") == "gitlab"
    assert verify_webhook({"x-gitlab-token": "K"}, body, b"k") is None
    assert verify_webhook({}, body, b"k") is None
    assert webhook_ref(body) == "refs/heads/main" and webhook_ref(b"not json") is None
    assert webhook_ref(b"[" * 100_000 + b"]" * 100_000) is None  # deeper than Python parses: not a push


# -- serve from remotes ---------------------------------------------------------------------------
def test_file_url_remote_is_mirrored_into_the_state_directory_and_followed(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    first = remote.push({"meshes/default.yaml": mesh()}, "first")
    cp = ControlPlaneProcess(f"file://{remote.bare}", tmp_path / "state", extra=["--fetch-interval", "0.3"])
    cp.start()
    try:
        cp.wait_applied(first)
        assert (tmp_path / "state" / "mirror.git" / "HEAD").exists()
        second = remote.push({"meshes/other.yaml": mesh("other")}, "second")
        cp.wait_applied(second, timeout=10)  # by the fetch interval alone
        # The pin lives in the mirror; rollback/history read it through --state-dir.
        code, out = run_cli("rollback", "--repo", f"file://{remote.bare}", "--state-dir", str(tmp_path / "state"), first)
        assert code == 0, out
        cp.wait_applied(first, timeout=10)
        code, out = run_cli("history", "--repo", f"file://{remote.bare}", "--state-dir", str(tmp_path / "state"), "--format", "json")
        doc = json.loads(out)
        assert (doc["servedRevision"], doc["pinnedRevision"], doc["head"]) == (first, first, second)
    finally:
        cp.stop()


def test_a_failing_fetch_keeps_serving_and_is_retried(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    first = remote.push({"meshes/default.yaml": mesh()}, "first")
    cp = ControlPlaneProcess(f"file://{remote.bare}", tmp_path / "state", extra=["--fetch-interval", "0.2"])
    cp.start()
    try:
        cp.wait_applied(first)
        moved = remote.bare.rename(tmp_path / "elsewhere.git")

        def retrying() -> dict[str, object] | None:
            status = cp.status() or {}
            cond = {c["type"]: c for c in status.get("conditions", [])}
            return status if cond.get("Reconciling", {}).get("reason") == "ProgressingWithRetry" else None

        status = wait_until(retrying, 10, what="a failed fetch in the status")
        cond = {c["type"]: c for c in status["conditions"]}
        assert (cond["Ready"]["status"], cond["Ready"]["reason"]) == ("False", "GitOperationFailed")
        assert "Stalled" not in cond and status["lastAppliedRevision"] == f"main@sha1:{first}"
        assert cond["Reconciling"]["message"].startswith("fetch: ") and cond["Reconciling"]["message"].endswith("; retrying in 0.2s")
        moved.rename(remote.bare)

        def ready() -> bool:
            status = cp.status() or {}
            return [(c["type"], c["reason"]) for c in status.get("conditions", [])] == [("Ready", "ReconciliationSucceeded")]

        wait_until(ready, 10, what="Ready again after the remote came back")
    finally:
        cp.stop()


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for localhost: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test git CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


@pytest.mark.skipif(http_backend() is None, reason="git http-backend not installed")
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_https_remote_with_a_token_from_a_file(tmp_path: Path, scheme: str) -> None:
    remote = ConfigRemote(tmp_path)
    first = remote.push({"meshes/default.yaml": mesh()}, "first")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    tls = _tls_files(tmp_path) if scheme == "https" else None
    extra = ["--git-token-file", str(token_file), "--fetch-interval", "3600"] + (["--git-ca-file", str(tls[0])] if tls else [])
    with GitHttpServer(tmp_path, "x-access-token", TOKEN, tls=(tls[1], tls[2]) if tls else None) as server:
        url = server.url("config.git")
        assert url.startswith(f"{scheme}://")
        cp = ControlPlaneProcess(url, tmp_path / "state", extra=extra)
        cp.start()
        try:
            cp.wait_applied(first)
            second = remote.push({"meshes/other.yaml": mesh("other")}, "second")
            code, out = run_cli("reconcile", "--server", cp.api, *as_admin(cp.state_dir))
            assert code == 0, out
            assert out.splitlines()[0] == f"applied {second[:12]}: Applied revision: main@sha1:{second}"
            status_text = json.dumps(cp.status())
        finally:
            cp.stop()
        users = {who for _, who in server.requests}
        assert "x-access-token" in users  # the token was sent, as basic auth
        log = cp.output()
        assert TOKEN not in log and TOKEN not in status_text
        assert 'credentials="https token (user x-access-token)"' in log


@pytest.mark.skipif(http_backend() is None, reason="git http-backend not installed")
def test_a_refused_token_stops_serve_with_exit_2_and_no_secret_in_the_output(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    remote.push({"meshes/default.yaml": mesh()}, "first")
    with GitHttpServer(tmp_path, "x-access-token", "the-right-token") as server:
        env = {**os.environ, "RECONCILER_GIT_TOKEN": TOKEN}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler",
                "serve",
                "--repo",
                server.url("config.git"),
                "--state-dir",
                str(tmp_path / "state"),
                "--xds-port",
                str(free_port()),
                "--api-port",
                str(free_port()),
                "--xds-tls",
                "none",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert "Error: cannot mirror http://127.0.0.1:" in result.stderr
    assert "authentication failed" in result.stderr or "credentials were refused" in result.stderr or "401" in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def test_serve_with_a_missing_credential_file_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "serve",
            "--repo",
            "https://git.invalid/x.git",
            "--state-dir",
            str(tmp_path / "state"),
            "--git-token-file",
            str(tmp_path / "nope"),
            "--xds-port",
            str(free_port()),
            "--api-port",
            str(free_port()),
            "--xds-tls",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"Error: cannot read the git token file {tmp_path / 'nope'}: No such file or directory" in result.stderr
