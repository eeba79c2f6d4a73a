"""`reconciler reconcile --out DIR`: static Envoy configs that real Envoys load and carry traffic with."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.commands.reconcile_out import MANIFEST
from tests.e2e.harness import Workload, free_port, http_get
from tests.gitops.helpers import ALLOW_ALL, StaticEnvoy, dataplane, deny_from, mesh
from tests.support import GitRepo


def reconcile(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["reconcile", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.envoy
@pytest.mark.parametrize("mtls", [False, True], ids=["plaintext", "mtls"])
def test_rendered_configs_carry_traffic_between_two_real_envoys(tmp_path: Path, mtls: bool) -> None:
    ports = {k: free_port() for k in ("web_in", "web_admin", "web_to_backend", "backend_in", "backend_admin")}
    with Workload("web") as web, Workload("backend") as backend:
        repo = GitRepo(tmp_path / "config")
        files: dict[str, str | bytes | None] = {
            "meshes/default.yaml": mesh(mtls=mtls),
            "dataplanes/web.yaml": dataplane("web", ports["web_in"], web.port, ports["web_admin"], {"backend": ports["web_to_backend"]}),
            "dataplanes/backend.yaml": dataplane("backend", ports["backend_in"], backend.port, ports["backend_admin"]),
        }
        if mtls:
            files["policies/allow-all.yaml"] = ALLOW_ALL
        sha = repo.commit(files, "two services")
        out = tmp_path / "out"
        code, output = reconcile("--repo", str(repo.path), "--out", str(out))
        assert code == 0, output
        assert f"rendered 2 proxies at revision {sha[:12]} into {out}" in output
        assert sorted(p.name for p in out.glob("*.yaml")) == ["default.backend.yaml", "default.web.yaml"]

        web_config = yaml.safe_load((out / "default.web.yaml").read_text())
        assert "dynamicResources" not in web_config
        assert web_config["admin"]["address"]["socketAddress"]["portValue"] == ports["web_admin"]
        if mtls:
            assert {s["name"] for s in web_config["staticResources"]["secrets"]} == {
                "identity_cert:secret:default",
                "mesh_ca:secret:default",
            }
            assert stat.S_IMODE((out / "default.web.yaml").stat().st_mode) == 0o600

        logs = tmp_path / "logs"
        logs.mkdir()
        with (
            StaticEnvoy(out / "default.backend.yaml", ports["backend_admin"], logs / "backend.log") as backend_envoy,
            StaticEnvoy(out / "default.web.yaml", ports["web_admin"], logs / "web.log") as web_envoy,
        ):
            status, body = http_get(f"http://127.0.0.1:{ports['web_to_backend']}/through-the-mesh")
            assert (status, body) == (200, "backend\n")
            assert backend.requests["/through-the-mesh"] == 1
            assert web_envoy.stats("http.backend.downstream_rq_completed").get("http.backend.downstream_rq_completed") == 1
            inbound = f"http.inbound_127_0_0_1_{ports['backend_in']}.downstream_rq_completed"
            assert backend_envoy.stats(inbound).get(inbound) == 1
            if mtls:
                handshakes = f"listener.127.0.0.1_{ports['backend_in']}.ssl.handshake"
                assert backend_envoy.stats(handshakes).get(handshakes) == 1


@pytest.mark.envoy
def test_rendered_rbac_denies_what_the_plan_says_is_denied(tmp_path: Path) -> None:
    """The static config enforces MeshTrafficPermission: a denied client gets 403 from the server's Envoy."""
    ports = {k: free_port() for k in ("web_in", "web_admin", "web_to_backend", "backend_in", "backend_admin")}
    with Workload("web") as web, Workload("backend") as backend:
        repo = GitRepo(tmp_path / "config")
        repo.commit(
            {
                "meshes/default.yaml": mesh(mtls=True),
                "policies/allow-all.yaml": ALLOW_ALL,
                "policies/deny.yaml": deny_from("web", "backend"),
                "dataplanes/web.yaml": dataplane(
                    "web", ports["web_in"], web.port, ports["web_admin"], {"backend": ports["web_to_backend"]}
                ),
                "dataplanes/backend.yaml": dataplane("backend", ports["backend_in"], backend.port, ports["backend_admin"]),
            }
        )
        out = tmp_path / "out"
        code, output = reconcile("--repo", str(repo.path), "--out", str(out), "--check")
        assert code == 0, output
        assert output.count("envoy: OK") == 2
        logs = tmp_path / "logs"
        logs.mkdir()
        with (
            StaticEnvoy(out / "default.backend.yaml", ports["backend_admin"], logs / "backend.log"),
            StaticEnvoy(out / "default.web.yaml", ports["web_admin"], logs / "web.log"),
        ):
            status, _ = http_get(f"http://127.0.0.1:{ports['web_to_backend']}/")
            assert status == 403
            assert backend.total == 0


def test_invalid_revision_writes_nothing_and_prints_the_errors(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "config")
    repo.commit({"meshes/default.yaml": mesh(), "dataplanes/web.yaml": dataplane("web", 70000, 19000, 19901)})
    out = tmp_path / "out"
    code, output = reconcile("--repo", str(repo.path), "--out", str(out))
    validated = CliRunner().invoke(cli, ["validate", "--repo", str(repo.path)])
    assert code == 1
    assert output == validated.output
    assert not out.exists()


def test_files_of_dataplanes_that_are_gone_are_removed_and_others_kept(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "config")
    base = {"meshes/default.yaml": mesh(), "dataplanes/web.yaml": dataplane("web", 18080, 19000, 19901)}
    repo.commit({**base, "dataplanes/backend.yaml": dataplane("backend", 18090, 19001, 19902)})
    out = tmp_path / "out"
    out.mkdir()
    (out / "unrelated.yaml").write_text("keep me\n")
    assert reconcile("--repo", str(repo.path), "--out", str(out))[0] == 0
    assert json.loads((out / MANIFEST).read_text())["files"] == ["default.backend.yaml", "default.web.yaml"]
    sha = repo.commit({"dataplanes/backend.yaml": None})
    code, output = reconcile("--repo", str(repo.path), "--out", str(out), "--format", "json")
    assert code == 0
    doc = json.loads(output)
    assert doc["revision"] == sha and doc["removed"] == [str(out / "default.backend.yaml")]
    assert sorted(p.name for p in out.glob("*.yaml")) == ["default.web.yaml", "unrelated.yaml"]


def test_reconcile_without_out_is_a_usage_error(tmp_path: Path) -> None:
    code, output = reconcile("--repo", str(tmp_path))
    assert code == 2
    assert "missing option '--out'" in output


def test_builtin_ca_comes_from_the_state_directory(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "config")
    repo.commit({"meshes/default.yaml": mesh(mtls=True), "dataplanes/web.yaml": dataplane("web", 18080, 19000, 19901)})
    state = tmp_path / "state"

    def trusted_ca(out: Path) -> str:
        config = yaml.safe_load((out / "default.web.yaml").read_text())
        secret = next(s for s in config["staticResources"]["secrets"] if s["name"] == "mesh_ca:secret:default")
        return str(secret["validationContext"]["trustedCa"])

    assert reconcile("--repo", str(repo.path), "--out", str(tmp_path / "a"), "--state-dir", str(state))[0] == 0
    assert reconcile("--repo", str(repo.path), "--out", str(tmp_path / "b"), "--state-dir", str(state))[0] == 0
    assert reconcile("--repo", str(repo.path), "--out", str(tmp_path / "c"))[0] == 0
    assert trusted_ca(tmp_path / "a") == trusted_ca(tmp_path / "b") != trusted_ca(tmp_path / "c")
    assert (state / "ca").is_dir()
