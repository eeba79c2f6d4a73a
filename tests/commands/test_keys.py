"""`reconciler keys init` / `keys rotate-token-key` and `token issue --keys-dir`: the keys an HA
install shares are made once (mode 0600, never overwritten), the Secret command is printed,
and tokens signed from the keys directory verify against it."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.cli import cli
from tests.support import GitRepo

MESH = """\
type: Mesh
name: default
mtls:
  enabledBackend: ca-1
  backends:
    - name: ca-1
      type: builtin
      conf:
        caCert:
          RSAbits: 3072
          expiration: 1y
    - name: ca-2
      type: builtin
"""
IDENTITY = """\
type: MeshIdentity
mesh: default
name: workloads
spec:
  selector:
    dataplane:
      matchLabels: {}
  spiffeID:
    trustDomain: "{{ .Mesh }}.mesh.local"
  provider:
    type: Bundled
    bundled:
      autogenerate:
        enabled: true
"""
EXPECTED = [
    "admin-token",
    "ca.default.ca-1.crt",
    "ca.default.ca-1.key",
    "ca.default.ca-2.crt",
    "ca.default.ca-2.key",
    "ca.default.meshidentity-workloads.crt",
    "ca.default.meshidentity-workloads.key",
    "dataplane-token.1.pem",
    "xds-ca.crt",
    "xds-ca.key",
]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    repo = GitRepo(tmp_path_factory.mktemp("keys") / "repo")
    repo.commit({"mesh.yaml": MESH, "identity.yaml": IDENTITY})
    return repo


@pytest.fixture(scope="module")
def made(repo: GitRepo, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    out = tmp_path_factory.mktemp("made") / "keys"
    return out, run("keys", "init", "--out", str(out), "--repo", str(repo.path))


def test_init_makes_every_key_the_repository_needs_with_mode_0600(made: tuple[Path, Result]) -> None:
    out, result = made
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == EXPECTED
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in out.iterdir()} == dict.fromkeys(EXPECTED, "0o600")
    for name in EXPECTED:
        assert f"created {out / name}" in result.output


def test_a_mesh_ca_gets_the_key_size_and_lifetime_its_mesh_asks_for(made: tuple[Path, Result]) -> None:
    out, _ = made
    cert = x509.load_pem_x509_certificate((out / "ca.default.ca-1.crt").read_bytes())
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=364) < lifetime <= dt.timedelta(days=366)
    assert cert.subject.rfc4514_string() == "CN=default ca-1 CA,O=mesh-reconciler"


def test_init_prints_the_kubectl_command_with_every_file_and_asks_for_a_backup(made: tuple[Path, Result]) -> None:
    out, result = made
    assert "kubectl create secret generic reconciler-keys --namespace mesh-system" in result.output
    for name in EXPECTED:
        assert f"--from-file={out / name}" in result.output
    assert f"Back {out} up" in result.output


def test_a_second_init_changes_nothing(made: tuple[Path, Result], repo: GitRepo) -> None:
    out, _ = made
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    again = run("keys", "init", "--out", str(out), "--repo", str(repo.path))
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.output and "created" not in again.output
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before


def test_init_without_a_repository_makes_the_control_planes_own_keys(tmp_path: Path) -> None:
    result = run("keys", "init", "--out", str(tmp_path / "keys"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["admin-token", "dataplane-token.1.pem", "xds-ca.crt", "xds-ca.key"]


def test_a_certificate_without_its_key_is_not_completed_but_named(made: tuple[Path, Result], tmp_path: Path) -> None:
    out = tmp_path / "keys"
    out.mkdir()
    (out / "xds-ca.crt").write_bytes((made[0] / "xds-ca.crt").read_bytes())
    result = CliRunner().invoke(cli, ["keys", "init", "--out", str(out)])
    assert result.exit_code == 2
    assert f"cannot use {out / 'xds-ca.key'}: xds-ca.crt exists without it" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["admin-token", "xds-ca.crt"]  # nothing replaced


def test_tokens_from_the_keys_dir_verify_there_across_a_token_key_rotation(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert run("keys", "init", "--out", str(keys)).exit_code == 0
    old = run("token", "issue", "--keys-dir", str(keys), "--name", "web").output.strip()
    rotated = run("keys", "rotate-token-key", "--dir", str(keys))
    assert "dataplane-token.2.pem created" in rotated.output and "dataplane-token.1.pem stay valid" in rotated.output
    assert stat.S_IMODE((keys / "dataplane-token.2.pem").stat().st_mode) == 0o600
    new = run("token", "issue", "--keys-dir", str(keys), "--name", "web").output.strip()
    assert "key id:    2" in run("token", "inspect", "--keys-dir", str(keys), new).output
    assert "verified:  valid" in run("token", "inspect", "--keys-dir", str(keys), new).output
    assert "verified:  valid" in run("token", "inspect", "--keys-dir", str(keys), old).output
    os.remove(keys / "dataplane-token.1.pem")  # the last step of a rotation: the old key leaves the Secret
    assert "verified:  valid" not in run("token", "inspect", "--keys-dir", str(keys), old).output
    assert sorted(p.name for p in keys.iterdir()) == ["admin-token", "dataplane-token.2.pem", "xds-ca.crt", "xds-ca.key"]


def test_token_issue_from_a_keys_dir_that_does_not_exist_says_how_to_make_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["token", "issue", "--keys-dir", str(tmp_path / "none"), "--name", "web"])
    assert result.exit_code == 2
    assert f"reconciler keys init --out {tmp_path / 'none'}" in result.output
    assert not (tmp_path / "none").exists()


def test_token_commands_read_the_keys_dir_from_the_environment_as_serve_does(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert run("keys", "init", "--out", str(keys)).exit_code == 0
    env = {"RECONCILER_KEYS_DIR": str(keys)}
    token = CliRunner().invoke(cli, ["token", "issue", "--name", "web"], env=env, catch_exceptions=False).output.strip()
    assert "verified:  valid" in CliRunner().invoke(cli, ["token", "inspect", token], env=env).output
    assert "verified:  valid" in run("token", "inspect", "--keys-dir", str(keys), token).output
