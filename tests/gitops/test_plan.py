"""`reconciler plan`: a dry run of a branch against its base, with the real Envoy as judge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.commands.plan import REDACTED, PairChange, redact, run_plan
from reconciler.commands.plan_render import MARKDOWN_MARKER, plan_markdown
from tests.gitops.helpers import ALLOW_ALL, dataplane, deny_from, mesh
from tests.support import GitRepo, git, served_listener

pytestmark = pytest.mark.envoy


def mesh_files(mtls: bool = True) -> dict[str, str | bytes | None]:
    """web calls backend and orders; orders calls backend."""
    return {
        "meshes/default.yaml": mesh(mtls=mtls),
        "policies/allow-all.yaml": ALLOW_ALL,
        "dataplanes/web.yaml": dataplane("web", 18080, 19000, 19901, {"backend": 20001, "orders": 20002}),
        "dataplanes/backend.yaml": dataplane("backend", 18090, 19001, 19902),
        "dataplanes/orders.yaml": dataplane("orders", 18100, 19002, 19903, {"backend": 20003}),
    }


@pytest.fixture
def config_repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "config")
    repo.commit(mesh_files(), "base")
    return repo


def branch(repo: GitRepo, name: str, files: dict[str, str | bytes | None]) -> str:
    git(repo.path, "checkout", "-q", "-B", name, "main")
    sha = repo.commit(files, name)
    git(repo.path, "checkout", "-q", "main")
    return sha


def plan_cli(repo: GitRepo, head: str, *extra: str) -> tuple[int, str]:
    """Exit code and stdout (the Envoy check's progress goes to stderr)."""
    result = CliRunner().invoke(cli, ["plan", "--repo", str(repo.path), "--base", "main", "--head", head, *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout


def test_plan_of_a_deny_permission_lists_exactly_the_affected_proxy_and_the_lost_pair(config_repo: GitRepo) -> None:
    branch(config_repo, "deny", {"policies/deny.yaml": deny_from("web", "backend")})
    plan = run_plan(str(config_repo.path), "", "main", "deny")
    assert plan.valid
    assert [p.node_id for p in plan.proxies] == ["default.backend"]
    backend = plan.proxies[0]
    assert [(c.inbound.port, c.lost, c.gained) for c in backend.reach] == [(18090, ("web",), ())]
    assert plan.lost == (PairChange("default", "web", "backend"),)
    assert plan.gained == ()
    assert (plan.allowed_before, plan.allowed_after) == (9, 8)
    assert backend.envoy is not None and backend.envoy.ok

    code, output = plan_cli(config_repo, "deny")
    assert code == 0, output
    assert "proxies: 1 affected" in output
    assert "  ~ default.backend (changed)" in output
    assert "inbound 127.0.0.1:18090 (backend) no longer accepts web" in output
    assert "  - web → backend  (mesh default)" in output
    assert "default.web" not in output and "default.orders" not in output


def test_plan_fails_when_envoy_rejects_a_config_the_validator_accepts(config_repo: GitRepo) -> None:
    # web's outbound to backend moves onto the port of web's own inbound: both listeners bind
    # 127.0.0.1:18080. The validator does not catch it; Envoy does.
    clash = dataplane("web", 18080, 19000, 19901, {"backend": 18080, "orders": 20002})
    sha = branch(config_repo, "clash", {"dataplanes/web.yaml": clash})
    validated = CliRunner().invoke(cli, ["validate", "--repo", str(config_repo.path), sha])
    assert validated.exit_code == 0, validated.output

    plan = run_plan(str(config_repo.path), "", "main", "clash")
    assert not plan.valid
    assert [p.node_id for p in plan.rejected_by_envoy] == ["default.web"]
    message = plan.rejected_by_envoy[0].envoy.message  # type: ignore[union-attr]
    assert "error adding listener: 'outbound:127.0.0.1:18080' has duplicate address '127.0.0.1:18080' as existing listener" in message

    code, output = plan_cli(config_repo, "clash")
    assert code == 1
    assert (
        f"Envoy rejects the config: error adding listener: '{served_listener('outbound:127.0.0.1:18080')}' has duplicate address" in output
    )
    assert output.rstrip().endswith("invalid: Envoy rejects the config of 1 proxy (default.web)")


def test_plan_of_an_invalid_head_prints_what_validate_prints(config_repo: GitRepo) -> None:
    bad = dataplane("web", 18080, 19000, 19901).replace("port: 18080", "port: 70000")
    sha = branch(config_repo, "bad", {"dataplanes/web.yaml": bad})
    validated = CliRunner().invoke(cli, ["validate", "--repo", str(config_repo.path), sha])
    assert validated.exit_code == 1
    code, output = plan_cli(config_repo, "bad")
    assert code == 1
    assert validated.output in output
    code, markdown = plan_cli(config_repo, "bad", "--format", "markdown")
    assert code == 1
    assert "**The configuration does not validate:**" in markdown
    assert validated.output.splitlines()[0] in markdown


def test_markdown_plan_has_the_summary_first_and_a_collapsible_block_per_proxy(config_repo: GitRepo) -> None:
    files = {"policies/deny.yaml": deny_from("web", "backend"), "dataplanes/orders.yaml": dataplane("orders", 18100, 19002, 19903)}
    branch(config_repo, "two", files)
    code, output = plan_cli(config_repo, "two", "--format", "markdown")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == MARKDOWN_MARKER
    assert lines[1].startswith("### ✅ mesh-reconciler plan: valid")
    assert output.index("| Proxies affected | 2 |") < output.index("#### Proxies")
    assert "| ➖ no longer allowed | `web` | `backend` | `default` |" in output
    summaries = re.findall(r"<summary><code>([^<]+)</code>", output)
    assert summaries == ["default.backend", "default.orders"]
    assert output.count("<details>\n<summary><code>") == 2
    assert "-    - LDS outbound:127.0.0.1:20003" not in output  # diffs are of Envoy JSON, not of text
    assert f"--- LDS {served_listener('outbound:127.0.0.1:20003')}" in output and "+++ /dev/null" in output


def test_plan_redacts_secrets_and_private_keys(config_repo: GitRepo) -> None:
    # Switching the mesh to another CA changes every proxy's certificate and trusted CAs.
    branch(config_repo, "rotate", {"meshes/default.yaml": mesh(mtls=True, backend="ca-2")})
    for fmt in ("text", "json", "markdown"):
        code, output = plan_cli(config_repo, "rotate", "--format", fmt)
        assert code == 0, output
        assert "PRIVATE KEY" not in output and "BEGIN CERTIFICATE" not in output
        assert "identity_cert:secret:default" in output
    doc = json.loads(plan_cli(config_repo, "rotate", "--format", "json")[1])
    secrets = [r for p in doc["proxies"] for r in p["resources"] if r["type"] == "SDS"]
    assert secrets and all(r["redacted"] and r["new"]["content"] == REDACTED for r in secrets)
    assert {p["node"] for p in doc["proxies"]} == {"default.web", "default.backend", "default.orders"}


def test_redact_hides_key_material_wherever_it_appears() -> None:
    cluster = {
        "name": "external",
        "transportSocket": {
            "typedConfig": {
                "commonTlsContext": {
                    "tlsCertificates": [{"certificateChain": {"inlineString": "cert"}, "privateKey": {"inlineString": "key"}}]
                }
            }
        },
        "password": "hunter2",
    }
    out = redact(cluster)
    assert out["transportSocket"]["typedConfig"]["commonTlsContext"]["tlsCertificates"][0] == {
        "certificateChain": {"inlineString": "cert"},
        "privateKey": REDACTED,
    }
    assert out["password"] == REDACTED


def test_plan_without_changes_is_valid_and_lists_no_proxy(config_repo: GitRepo) -> None:
    code, output = plan_cli(config_repo, "main")
    assert code == 0
    assert "resources: no changes" in output
    assert "proxies: 0 affected" in output
    md = plan_markdown(run_plan(str(config_repo.path), "", "main", "main"))
    assert "| Proxies affected | 0 |" in md and "<details>\n<summary>" not in md


def test_plan_can_skip_envoy(config_repo: GitRepo) -> None:
    clash = dataplane("web", 18080, 19000, 19901, {"backend": 18080})
    branch(config_repo, "clash", {"dataplanes/web.yaml": clash})
    code, output = plan_cli(config_repo, "clash", "--no-envoy-check")
    assert code == 0
    assert output.rstrip().endswith("valid (Envoy check skipped)")


def test_plan_against_a_base_without_the_path_compares_with_nothing(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "config")
    repo.commit({"README.md": "config lives in mesh/\n"}, "empty")
    git(repo.path, "checkout", "-q", "-b", "first")
    repo.commit({f"mesh/{k}": v for k, v in mesh_files(mtls=False).items()}, "first config")
    result = CliRunner().invoke(
        cli, ["plan", "--repo", str(repo.path), "--path", "mesh", "--base", "main", "--head", "first", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [p["status"] for p in doc["proxies"]] == ["added", "added", "added"]
    assert len(doc["resources"]["added"]) == 5
    # Without mTLS every service may reach every other, itself included.
    assert doc["servicePairs"]["allowedAfter"] == 9 and len(doc["servicePairs"]["gained"]) == 9


def test_markdown_too_long_for_a_comment_keeps_the_summary_and_drops_the_diffs(config_repo: GitRepo) -> None:
    branch(
        config_repo, "rotate", {"meshes/default.yaml": mesh(mtls=True, backend="ca-2"), "policies/deny.yaml": deny_from("web", "backend")}
    )
    plan = run_plan(str(config_repo.path), "", "main", "rotate", envoy_check=False)
    full = plan_markdown(plan)
    short = plan_markdown(plan, limit=2500)
    assert len(short) <= 2500 < len(full)
    assert short.startswith(MARKDOWN_MARKER)
    assert "| Proxies affected | 3 |" in short and "Per-proxy diffs left out" in short
    assert "- `default.web` (changed)" in short


def test_plan_without_an_envoy_binary_is_a_usage_error(config_repo: GitRepo, tmp_path: Path) -> None:
    branch(config_repo, "deny", {"policies/deny.yaml": deny_from("web", "backend")})
    result = CliRunner().invoke(
        cli, ["plan", "--repo", str(config_repo.path), "--base", "main", "--head", "deny"], env={"ENVOY_BIN": str(tmp_path / "no-envoy")}
    )
    assert result.exit_code == 2
    assert "is not an executable file" in result.output and "--no-envoy-check" in result.output
