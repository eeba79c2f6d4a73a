"""Replicas following the same commit serve every proxy byte-identical resources, so a proxy
that reconnects to another replica (or to one that restarted) gets no push.

Replica A builds in this process; replicas B and C build in processes of their own (other
string hashing, their own copies of the CA), through tests/replicas/probe.py. The CAs are
shared as one state directory, or as the production layout: a keys directory made by
`keys init` (read by `serve --keys-dir`) and a state directory of each replica's own. The repositories: example-repo (mTLS, MeshIdentity, MeshTrust,
MeshMetric, MeshTrace, MeshAccessLog, a gateway), a provided ECDSA mesh CA next to a mesh with
only a MeshIdentity, and the golden inputs of the policies whose output is most varied.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.ca.derivation import window_at
from reconciler.ca.keys_init import builtin_cas, make_keys
from reconciler.reconcile import Engine
from reconciler.source.git import GitSource
from reconciler.xds.resources import SECRET
from tests.replicas.probe import Versions, versions
from tests.support import ALLOW_ALL, GitRepo, dataplane_yaml, self_signed_ec_ca

ROOT = Path(__file__).parents[2]
WINDOW = window_at(1_800_000_000.0, 24 * 3600.0)
"""The window of the repositories' 24h workload certificates the replicas build in."""
NOW = WINDOW.start + 600
GOLDEN_FOLDERS = ("core", "meshidentity", "meshtls", "meshgateway", "meshmetric", "meshtrace", "meshaccesslog", "meshtrafficpermission")
MTLS_REPOS = ("example", "provided-ecdsa-and-identity")
"""Repositories whose every proxy has a workload certificate."""


def _two_meshes() -> dict[str, str | bytes | None]:
    """`payments` signs with a provided ECDSA CA (STRICT); `default` has only a MeshIdentity."""
    cert, key = self_signed_ec_ca("payments CA")
    files: dict[str, str | bytes | None] = {
        "meshes/default.yaml": "type: Mesh\nname: default\n",
        "meshes/payments.yaml": """\
type: Mesh
name: payments
mtls:
  enabledBackend: given
  backends:
    - name: given
      type: provided
      conf:
        cert: {secret: ca-cert}
        key: {secret: ca-key}
""",
        "identity.yaml": """\
type: MeshIdentity
name: all
mesh: default
spec:
  provider:
    type: Bundled
    bundled:
      autogenerate: {enabled: true}
""",
        "policies/allow-all.yaml": ALLOW_ALL,
        "policies/allow-all-payments.yaml": ALLOW_ALL.replace("mesh: default", "mesh: payments"),
    }
    for name, data in (("ca-cert", cert), ("ca-key", key)):
        files[f"secrets/{name}.yaml"] = f"type: Secret\nmesh: payments\nname: {name}\ndata: {base64.b64encode(data).decode()}\n"
    for mesh in ("default", "payments"):
        labels = {"kuma.io/workload": "shop"}
        files[f"dataplanes/{mesh}-web.yaml"] = dataplane_yaml("web", "web", 18080, 19000, {"backend": 20001}, labels=labels, mesh=mesh)
        files[f"dataplanes/{mesh}-backend.yaml"] = dataplane_yaml("backend", "backend", 18090, 19001, labels=labels, mesh=mesh)
    return files


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("repos")
    example = GitRepo(base / "example")
    shutil.copytree(ROOT / "example-repo", example.path, dirs_exist_ok=True)
    example.commit(message="the example")
    GitRepo(base / "provided-ecdsa-and-identity").commit(_two_meshes(), "two meshes")
    out = [example.path, base / "provided-ecdsa-and-identity"]
    for folder in GOLDEN_FOLDERS:
        for case in sorted((ROOT / "tests" / "policies" / folder).glob("*.input.yaml")):
            text = case.read_text()
            if "type: Mesh\n" not in text:  # as the golden tests do
                text += "\n---\ntype: Mesh\nname: default\n"
            repo = GitRepo(base / f"{folder}-{case.name.removesuffix('.input.yaml')}")
            repo.commit({"all.yaml": text}, "golden input")
            out.append(repo.path)
    return out


@dataclass(frozen=True)
class Layout:
    """Where replicas keep their CAs: one shared state directory, or each its own state
    directory and one keys directory (`serve --keys-dir`, made by `keys init`)."""

    state_a: Path
    state_others: Path
    keys: Path | None


@pytest.fixture(scope="module", params=["shared-state-dir", "keys-dir"])
def layout(request: pytest.FixtureRequest, repos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Layout:
    if request.param == "shared-state-dir":
        state = tmp_path_factory.mktemp("state")
        return Layout(state, state, None)
    keys = tmp_path_factory.mktemp("keys")
    for repo in repos:
        cas = builtin_cas(Engine(GitSource(str(repo))).evaluate("HEAD").snapshot)
        if cas:
            make_keys(keys / repo.name, cas)
    return Layout(tmp_path_factory.mktemp("state-a"), tmp_path_factory.mktemp("state-others"), keys)


@pytest.fixture(scope="module")
def replica_a(repos: list[Path], layout: Layout) -> dict[str, Versions]:
    """The first replica (with a shared state directory, it creates the builtin CAs there)."""
    return {repo.name: versions(repo, layout.state_a, NOW, layout.keys) for repo in repos}


def _other_process(repos: list[Path], layout: Layout, now: float, hash_seed: str) -> dict[str, Versions]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    keys = str(layout.keys) if layout.keys is not None else "-"
    done = subprocess.run(
        [sys.executable, "-m", "tests.replicas.probe", repr(now), str(layout.state_others), keys, *map(str, repos)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Versions] = json.loads(done.stdout)
    return result


def _certificates(replica: dict[str, Versions], repo: str) -> dict[str, str]:
    return {f"{node} {key}": v for node, resources in replica[repo].items() for key, v in resources.items() if key.startswith(SECRET)}


def test_every_proxy_of_every_repository_has_resources(replica_a: dict[str, Versions]) -> None:
    assert len(replica_a) > 20
    assert all(replica_a.values()), [name for name, nodes in replica_a.items() if not nodes]
    for repo in MTLS_REPOS:
        with_certs = {key.split(" ")[0] for key in _certificates(replica_a, repo) if "identity_cert" in key}
        assert with_certs == set(replica_a[repo]), repo


@pytest.mark.parametrize("hash_seed", ["1", "2"])
def test_replicas_in_other_processes_serve_identical_versions(
    repos: list[Path], layout: Layout, replica_a: dict[str, Versions], hash_seed: str
) -> None:
    other = _other_process(repos, layout, NOW + 30, hash_seed)
    assert other.keys() == replica_a.keys()
    differing = {
        f"{repo} {node} {key}"
        for repo, nodes in replica_a.items()
        for node, resources in nodes.items()
        for key, version in resources.items()
        if other[repo].get(node, {}).get(key) != version
    }
    assert differing == set()
    assert other == replica_a


def test_a_replica_restarted_later_in_the_window_serves_the_same(repos: list[Path], layout: Layout, replica_a: dict[str, Versions]) -> None:
    restarted = {repo.name: versions(repo, layout.state_a, WINDOW.end - 60, layout.keys) for repo in repos[:2]}
    for repo in MTLS_REPOS:
        assert restarted[repo] == replica_a[repo]


def test_the_next_window_renews_every_certificate_and_changes_nothing_else(
    repos: list[Path], layout: Layout, replica_a: dict[str, Versions]
) -> None:
    renewed = {repo.name: versions(repo, layout.state_a, WINDOW.end, layout.keys) for repo in repos[:2]}
    for repo in MTLS_REPOS:
        before, after = replica_a[repo], renewed[repo]
        assert after.keys() == before.keys()
        changed = {f"{node} {key}" for node in before for key in before[node] if after[node].get(key) != before[node][key]}
        identity_certs = {key for key in _certificates(replica_a, repo) if "identity_cert" in key}
        assert changed == identity_certs, repo
