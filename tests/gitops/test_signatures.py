"""Signed commits: real keys from ssh-keygen (and gpg), real signatures made by `git commit -S`.

`serve --verify-signatures` applies only commits signed by a key in the allowed-signers file;
`validate` and the pre-receive hook say the same thing before a push lands.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pygit2
import pytest

from reconciler.source.signatures import SignaturePolicy, verify_commit
from tests.e2e.harness import ControlPlaneProcess
from tests.gitops.helpers import fresh_shell_env, mesh, reconciler_cmd
from tests.gitops.serving import SigningClone, allowed_signers, as_admin, conditions, history_outcomes, run_cli, ssh_key
from tests.support import git


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "keys"
    d.mkdir()
    out = {"alice": ssh_key(d, "alice"), "mallory": ssh_key(d, "mallory")}
    out["allowed"] = allowed_signers(d / "allowed_signers", {"alice@example.com": out["alice"]})
    return out


def test_verify_commit_tells_unsigned_untrusted_and_trusted_apart(tmp_path: Path, keys: dict[str, Path]) -> None:
    clone = SigningClone(tmp_path)
    unsigned = clone.commit_signed({"meshes/default.yaml": mesh()}, "unsigned", None)
    untrusted = clone.commit_signed({"meshes/a.yaml": mesh("a")}, "by mallory", keys["mallory"])
    trusted = clone.commit_signed({"meshes/b.yaml": mesh("b")}, "by alice", keys["alice"])
    repo = pygit2.Repository(str(clone.work))
    policy = SignaturePolicy(str(keys["allowed"])).check_setup()
    v = verify_commit(repo, unsigned, policy)
    assert (v.trusted, v.message) == (False, f"commit {unsigned[:12]} is not signed; only commits signed by a trusted key are applied")
    v = verify_commit(repo, untrusted, policy)
    assert not v.trusted
    assert v.message.startswith(f"commit {untrusted[:12]} is signed by an untrusted SSH key (ED25519 SHA256:")
    assert v.message.endswith(f"): it is not in the allowed signers file {keys['allowed']}")
    v = verify_commit(repo, trusted, policy)
    assert v.trusted and v.signer == "alice@example.com"
    assert v.message.startswith("good SSH signature by alice@example.com (ED25519 SHA256:")
    # A GPG-style policy without a keyring does not accept an SSH signature by accident.
    assert not verify_commit(repo, trusted, SignaturePolicy(None, None)).trusted


def test_serve_applies_only_commits_signed_by_a_trusted_key(tmp_path: Path, keys: dict[str, Path]) -> None:
    clone = SigningClone(tmp_path)
    first = clone.push_signed({"meshes/default.yaml": mesh()}, "signed by alice", keys["alice"])
    cp = ControlPlaneProcess(clone.bare, tmp_path / "state", extra=["--verify-signatures", str(keys["allowed"])])
    cp.start()
    try:
        cp.wait_applied(first)
        unsigned = clone.push_signed({"meshes/other.yaml": mesh("other")}, "unsigned", None)
        status = cp.wait_attempted(unsigned)
        assert status["lastAppliedRevision"] == f"main@sha1:{first}"
        ready = conditions(status)["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "VerificationError")
        assert ready["message"] == (
            f"signature verification failed: commit {unsigned[:12]} is not signed; only commits signed by a trusted key are applied; serving main@sha1:{first}"
        )
        assert conditions(status)["Stalled"]["reason"] == "VerificationError"

        untrusted = clone.push_signed({"meshes/other.yaml": mesh("other")}, "by mallory", keys["mallory"])
        status = cp.wait_attempted(untrusted)
        assert status["lastAppliedRevision"] == f"main@sha1:{first}"
        assert "is signed by an untrusted SSH key" in status["lastFailure"]["message"]

        trusted = clone.push_signed({"meshes/other.yaml": mesh("other")}, "by alice", keys["alice"])
        status = cp.wait_applied(trusted)
        assert conditions(status)["Ready"]["reason"] == "ReconciliationSucceeded"

        code, out = run_cli("history", "--server", cp.api, "--format", "json")
        doc = json.loads(out)
        outcomes = history_outcomes(doc)
        assert (outcomes[trusted], outcomes[untrusted], outcomes[unsigned], outcomes[first]) == (
            "applied",
            "rejected",
            "rejected",
            "applied",
        )
        by_rev = {c["revision"]: c for c in doc["commits"]}
        assert by_rev[unsigned]["cause"] == "VerificationError"
        # An unsigned commit cannot be pinned either.
        code, out = run_cli("rollback", "--server", cp.api, *as_admin(cp.state_dir), unsigned)
        assert code == 1 and f"refusing to pin {unsigned[:12]}: signature verification failed" in out
    finally:
        cp.stop()


def test_validate_and_the_pre_receive_hook_check_signatures(tmp_path: Path, keys: dict[str, Path]) -> None:
    clone = SigningClone(tmp_path)
    installed = subprocess.run(
        reconciler_cmd("hook", "install", "--repo", str(clone.bare), "--verify-signatures", str(keys["allowed"])),
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    unsigned = clone.commit_signed({"meshes/default.yaml": mesh()}, "unsigned", None)
    code, out = run_cli("validate", "--repo", str(clone.work), "--verify-signatures", str(keys["allowed"]), unsigned)
    assert (code, out.splitlines()[-1]) == (
        1,
        f"signature: commit {unsigned[:12]} is not signed; only commits signed by a trusted key are applied",
    )
    pushed = subprocess.run(
        ["git", "push", "origin", "HEAD:main"], cwd=clone.work, env=fresh_shell_env(tmp_path), capture_output=True, text=True, check=False
    )
    assert pushed.returncode != 0
    assert f"remote: mesh-reconciler: refusing refs/heads/main: commit {unsigned[:12]} is not signed" in pushed.stderr

    signed = clone.commit_signed({}, "signed", keys["alice"])
    code, out = run_cli("validate", "--repo", str(clone.work), "--verify-signatures", str(keys["allowed"]), "--format", "json", signed)
    doc = json.loads(out)
    assert code == 0 and doc["valid"] and doc["signature"]["signer"] == "alice@example.com"
    pushed = subprocess.run(
        ["git", "push", "origin", "HEAD:main"], cwd=clone.work, env=fresh_shell_env(tmp_path), capture_output=True, text=True, check=False
    )
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: signature: good SSH signature by alice@example.com" in pushed.stderr


@pytest.mark.skipif(shutil.which("gpg") is None or shutil.which("gpgv") is None, reason="gpg not installed")
def test_gpg_signatures_are_checked_against_the_given_keyring(tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}

    def gpg(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "", *args],
            env=env,
            capture_output=True,
            check=True,
        )

    gpg("--quick-gen-key", "Bob <bob@example.com>", "ed25519", "sign", "never")
    gpg("--quick-gen-key", "Eve <eve@example.com>", "ed25519", "sign", "never")
    (tmp_path / "bob.gpg").write_bytes(gpg("--export", "bob@example.com").stdout)
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    for who in ("bob", "eve"):
        subprocess.run(
            ["git", "-c", f"user.signingkey={who}@example.com", "commit", "-q", "-S", "--allow-empty", "-m", who],
            cwd=repo,
            env={
                **env,
                "GIT_AUTHOR_NAME": who,
                "GIT_AUTHOR_EMAIL": f"{who}@example.com",
                "GIT_COMMITTER_NAME": who,
                "GIT_COMMITTER_EMAIL": f"{who}@example.com",
            },
            check=True,
            capture_output=True,
        )
    r = pygit2.Repository(str(repo))
    policy = SignaturePolicy(None, str(tmp_path / "bob.gpg")).check_setup()
    bob = verify_commit(r, "HEAD~1", policy)
    assert bob.trusted and bob.signer == "Bob <bob@example.com>"
    eve = verify_commit(r, "HEAD", policy)
    assert not eve.trusted and "is signed by an untrusted GPG key" in eve.message
    # An SSH-only policy refuses GPG signatures, saying which flag is missing.
    assert verify_commit(r, "HEAD~1", SignaturePolicy(str(tmp_path / "bob.gpg"))).message.endswith(
        "no GPG keyring is configured (--gpg-keyring)"
    )


def test_serve_with_a_missing_allowed_signers_file_exits_2(tmp_path: Path) -> None:
    code, out = run_cli("validate", "--repo", str(tmp_path), "--verify-signatures", str(tmp_path / "nope"))
    assert code == 2 and "allowed signers file" in out and "does not exist" in out
