"""deploy/github-action and deploy/pre-commit stay in step with the commands they run."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import yaml

from reconciler.commands.plan import MARKDOWN_MARKER
from tests.e2e.harness import REPO_ROOT
from tests.gitops.helpers import mesh, reconciler_cmd

DEPLOY = REPO_ROOT / "deploy"


def test_workflow_plans_pull_requests_and_updates_its_comment() -> None:
    text = (DEPLOY / "github-action" / "mesh-plan.yml").read_text()
    workflow = yaml.safe_load(text)
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as True
    assert workflow["permissions"]["pull-requests"] == "write"
    steps = workflow["jobs"]["plan"]["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    plan = next(s for s in steps if s.get("id") == "plan")
    command = next(line for line in plan["run"].splitlines() if line.strip().startswith("reconciler plan"))
    args = shlex.split(command.split(">")[0])
    assert args[:2] == ["reconciler", "plan"]
    assert args[args.index("--format") + 1] == "markdown"
    assert {"--base", "--head", "--repo", "--path"} <= set(args)
    comment = next(s for s in steps if s.get("uses", "").startswith("actions/github-script"))
    assert f"const marker = '{MARKDOWN_MARKER}';" in comment["with"]["script"]
    assert steps[-1]["if"] == "steps.plan.outputs.exit != '0'"


def test_pre_commit_hooks_run_validate_on_the_work_tree(tmp_path: Path) -> None:
    hooks = yaml.safe_load((DEPLOY / "pre-commit" / ".pre-commit-hooks.yaml").read_text())
    example = yaml.safe_load((DEPLOY / "pre-commit" / "pre-commit-config.example.yaml").read_text())
    local = example["repos"][0]["hooks"][0]
    for hook in (hooks[0], local):
        assert hook["id"] == "mesh-reconciler-validate"
        assert hook["entry"] == "reconciler validate --worktree"
        assert hook["pass_filenames"] is False

    # What pre-commit runs: the entry, in the repository's top directory.
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "default.yaml").write_text(mesh())
    entry = hooks[0]["entry"].split()[1:]
    ok = subprocess.run(reconciler_cmd(*entry), cwd=tmp_path, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (tmp_path / "bad.yaml").write_text("type: Dataplane\nmesh: nowhere\nname: web\nnetworking:\n  address: 127.0.0.1\n")
    bad = subprocess.run(reconciler_cmd(*entry), cwd=tmp_path, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert bad.stdout.startswith("bad.yaml:")
