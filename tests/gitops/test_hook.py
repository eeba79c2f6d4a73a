"""`reconciler hook install`: a real bare repository, a clone and real `git push`.

Every push runs with the environment of a fresh shell (no virtualenv on PATH, no PYTHONPATH),
so the hook has to find its Python by the absolute path it was installed with.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.commands.hook import HOOK_MARKER, RefUpdate, check_updates, open_for_hook
from tests.gitops.helpers import dataplane, fresh_shell_env, mesh, reconciler_cmd
from tests.support import git

BAD_TIMEOUT = """\
type: MeshTimeout
mesh: default
name: bad
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        connectionTimeout: 0s
"""
BAD_ERROR = "policies/bad.yaml:11: MeshTimeout default/bad /spec/to/0/default/connectionTimeout: must be greater than zero when defined"
GOOD = {"meshes/default.yaml": mesh(), "dataplanes/web.yaml": dataplane("web", 18080, 19000, 19901)}


class Remote:
    """A bare repository with the hook installed, and a clone that pushes to it."""

    def __init__(self, root: Path, *extra: str) -> None:
        self.root = root
        self.bare = root / "config.git"
        self.work = root / "work"
        git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        git(root, "init", "-q", "-b", "main", str(self.work))
        git(self.work, "remote", "add", "origin", str(self.bare))
        installed = subprocess.run(
            reconciler_cmd("hook", "install", "--repo", str(self.bare), *extra), capture_output=True, text=True, check=False
        )
        assert installed.returncode == 0, installed.stderr
        self.install_output = installed.stdout

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        for rel, content in files.items():
            target = self.work / rel
            if content is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.work, "rev-parse", "HEAD").stdout.strip()

    def push(self, refspec: str) -> subprocess.CompletedProcess[str]:
        """`git push` from a fresh shell; what the pusher sees is on stderr."""
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        return subprocess.run(
            ["git", "push", "origin", refspec], cwd=self.work, env=fresh_shell_env(home), capture_output=True, text=True, check=False
        )

    def branch(self, name: str = "main") -> str | None:
        done = git(self.bare, "rev-parse", "--verify", "-q", f"refs/heads/{name}", check=False)
        return done.stdout.strip() or None


def remote_lines(stderr: str) -> list[str]:
    """The lines the hook printed, as the pusher's terminal shows them (without `remote: `)."""
    return [line.removeprefix("remote: ").rstrip() for line in stderr.splitlines() if line.startswith("remote: ")]


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path)


def test_invalid_push_is_refused_with_the_errors_validate_prints(remote: Remote) -> None:
    good = remote.commit(GOOD, "valid config")
    accepted = remote.push("HEAD:refs/heads/main")
    assert accepted.returncode == 0, accepted.stderr
    assert remote.branch() == good
    assert "valid: 2 resources (revision " + good[:12] + ")" in remote_lines(accepted.stderr)

    bad = remote.commit({"policies/bad.yaml": BAD_TIMEOUT}, "break a timeout")
    refused = remote.push("HEAD:refs/heads/main")
    assert refused.returncode != 0
    assert "[remote rejected] HEAD -> main (pre-receive hook declined)" in refused.stderr
    assert f"remote: {BAD_ERROR}" in refused.stderr
    # Exactly what `reconciler validate` prints for that commit, then why the push is refused.
    validate = subprocess.run(reconciler_cmd("validate", "--repo", str(remote.work), bad), capture_output=True, text=True, check=False)
    assert validate.returncode == 1
    shown = remote_lines(refused.stderr)
    assert shown[: len(validate.stdout.splitlines())] == validate.stdout.splitlines()
    assert shown[-1].startswith(f"mesh-reconciler: refusing refs/heads/main: commit {bad[:12]} is invalid")
    assert remote.branch() == good


def test_valid_push_after_a_refused_one_is_accepted(remote: Remote) -> None:
    remote.commit(GOOD, "valid config")
    assert remote.push("HEAD:refs/heads/main").returncode == 0
    remote.commit({"policies/bad.yaml": BAD_TIMEOUT}, "break a timeout")
    assert remote.push("HEAD:refs/heads/main").returncode != 0
    fixed = remote.commit({"policies/bad.yaml": None}, "remove the broken timeout")
    pushed = remote.push("HEAD:refs/heads/main")
    assert pushed.returncode == 0, pushed.stderr
    assert remote.branch() == fixed


def test_creating_the_tracked_branch_validates_its_first_commit(remote: Remote) -> None:
    remote.commit({**GOOD, "policies/bad.yaml": BAD_TIMEOUT}, "broken from the start")
    refused = remote.push("HEAD:refs/heads/main")
    assert refused.returncode != 0
    assert BAD_ERROR in remote_lines(refused.stderr)
    assert remote.branch() is None


def test_pushes_to_other_branches_are_not_checked(remote: Remote) -> None:
    remote.commit({**GOOD, "policies/bad.yaml": BAD_TIMEOUT}, "work in progress")
    pushed = remote.push("HEAD:refs/heads/feature")
    assert pushed.returncode == 0, pushed.stderr
    assert remote_lines(pushed.stderr) == []
    assert remote.branch("feature") is not None


def test_deleting_the_tracked_branch_is_refused_and_other_branches_can_be_deleted(remote: Remote) -> None:
    remote.commit(GOOD, "valid config")
    assert remote.push("HEAD:refs/heads/main").returncode == 0
    assert remote.push("HEAD:refs/heads/feature").returncode == 0
    refused = remote.push(":refs/heads/main")
    assert refused.returncode != 0
    assert "mesh-reconciler: refusing to delete refs/heads/main: it is the branch the reconciler serves" in remote_lines(refused.stderr)
    assert remote.branch() is not None
    assert remote.push(":refs/heads/feature").returncode == 0
    assert remote.branch("feature") is None


def test_hook_with_branch_and_path_checks_only_that_branch_and_directory(tmp_path: Path) -> None:
    remote = Remote(tmp_path, "--branch", "prod", "--path", "mesh")
    remote.commit({"mesh/meshes/default.yaml": mesh(), "elsewhere/bad.yaml": BAD_TIMEOUT}, "config under mesh/")
    assert remote.push("HEAD:refs/heads/prod").returncode == 0
    remote.commit({"mesh/policies/bad.yaml": BAD_TIMEOUT.replace("name: bad", "name: bad-too")}, "break it under mesh/")
    refused = remote.push("HEAD:refs/heads/prod")
    assert refused.returncode != 0
    assert any("mesh/policies/bad.yaml:11: MeshTimeout default/bad-too" in line for line in remote_lines(refused.stderr))
    assert remote.push("HEAD:refs/heads/main").returncode == 0


def test_hook_calls_the_installing_interpreter_by_absolute_path(remote: Remote) -> None:
    script = (remote.bare / "hooks" / "pre-receive").read_text()
    assert HOOK_MARKER in script
    exec_line = next(line for line in script.splitlines() if line.startswith("exec "))
    interpreter = exec_line.split()[1]
    assert Path(interpreter).is_absolute()
    assert "-m reconciler hook pre-receive --branch main" in exec_line
    assert "pushes to refs/heads/main are validated" in remote.install_output


def test_install_keeps_a_foreign_hook_unless_forced(tmp_path: Path) -> None:
    bare = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    foreign = bare / "hooks" / "pre-receive"
    foreign.write_text("#!/bin/sh\nexit 0\n")
    refused = subprocess.run(reconciler_cmd("hook", "install", "--repo", str(bare)), capture_output=True, text=True, check=False)
    assert refused.returncode == 2
    assert "was not installed by reconciler" in refused.stderr
    assert foreign.read_text() == "#!/bin/sh\nexit 0\n"
    forced = subprocess.run(reconciler_cmd("hook", "install", "--repo", str(bare), "--force"), capture_output=True, text=True, check=False)
    assert forced.returncode == 0, forced.stderr
    assert HOOK_MARKER in foreign.read_text()
    # Reinstalling over our own hook needs no --force.
    again = subprocess.run(
        reconciler_cmd("hook", "install", "--repo", str(bare), "--branch", "prod"), capture_output=True, text=True, check=False
    )
    assert again.returncode == 0, again.stderr
    assert "--branch prod" in foreign.read_text()


def test_quarantined_objects_are_visible_only_through_the_hook_environment(tmp_path: Path) -> None:
    """Git hands a hook the pushed objects in a quarantine directory named by environment
    variables; without them the new commit cannot be read."""
    source = tmp_path / "source"
    git(tmp_path, "init", "-q", "-b", "main", str(source))
    (source / "meshes").mkdir()
    (source / "meshes" / "default.yaml").write_text(mesh())
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "config")
    sha = git(source, "rev-parse", "HEAD").stdout.strip()
    bare = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    quarantine = tmp_path / "incoming"
    # Put the objects where only the quarantine variables point, as receive-pack does.
    git(source, "push", "-q", str(bare), "main:refs/heads/tmp")
    (bare / "objects").rename(quarantine)
    (bare / "objects").mkdir()
    git(tmp_path, "init", "-q", "--bare", str(bare))  # recreate the empty object layout
    env = {
        "GIT_QUARANTINE_PATH": str(quarantine),
        "GIT_OBJECT_DIRECTORY": str(quarantine),
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(bare / "objects"),
    }
    update = RefUpdate("0" * 40, sha, "refs/heads/main")
    blind = check_updates(open_for_hook(str(bare), env={}), [update], "main")
    assert not blind[0].accepted
    seeing = check_updates(open_for_hook(str(bare), env=env), [update], "main")
    assert seeing[0].accepted, seeing[0].lines
