"""`reconciler validate` and `reconciler diff` as a user and a CI job run them."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner, Result

from reconciler.cli import cli
from tests.support import GitRepo

MESH = "type: Mesh\nname: default\n"
RETRY = """\
type: MeshRetry
name: retry
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        http:
          numRetries: 3
"""
BAD_DURATION = RETRY.replace("numRetries: 3", "perTryTimeout: soon")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_validate_valid_commit_exits_zero(repo: GitRepo) -> None:
    sha = repo.commit({"m.yaml": MESH, "r.yaml": RETRY})
    result = run("validate", "--repo", str(repo.path))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"valid: 2 resources (revision {sha[:12]})"


def test_validate_json_lists_each_problem_with_location_and_identity(repo: GitRepo) -> None:
    sha = repo.commit({"m.yaml": MESH, "r.yaml": BAD_DURATION})
    result = run("validate", "--repo", str(repo.path), "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["valid"] is False
    assert doc["revision"] == sha
    assert doc["resources"] == 2
    (error,) = doc["errors"]
    assert error["file"] == "r.yaml"
    assert error["line"] == 12
    assert error["resource"] == {"type": "MeshRetry", "mesh": "default", "name": "retry"}
    assert error["pointer"] == "/spec/to/0/default/http/perTryTimeout"
    assert set(error) == {"file", "line", "resource", "pointer", "message"}


def test_validate_text_prints_file_line_identity_pointer(repo: GitRepo) -> None:
    repo.commit({"m.yaml": MESH, "r.yaml": BAD_DURATION})
    result = run("validate", "--repo", str(repo.path))
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert first.startswith("r.yaml:12: MeshRetry default/retry /spec/to/0/default/http/perTryTimeout: ")
    assert result.output.splitlines()[-1].startswith("invalid: 1 error in 1 file")


def test_validate_an_older_revision(repo: GitRepo) -> None:
    good = repo.commit({"m.yaml": MESH, "r.yaml": RETRY})
    repo.commit({"r.yaml": BAD_DURATION})
    assert run("validate", "--repo", str(repo.path)).exit_code == 1
    assert run("validate", "--repo", str(repo.path), good).exit_code == 0
    assert run("validate", "--repo", str(repo.path), "HEAD~1").exit_code == 0


def test_validate_worktree_sees_uncommitted_files(repo: GitRepo) -> None:
    repo.commit({"m.yaml": MESH, "r.yaml": RETRY})
    repo.write({"r.yaml": BAD_DURATION})
    assert run("validate", "--repo", str(repo.path)).exit_code == 0
    result = run("validate", "--repo", str(repo.path), "--worktree")
    assert result.exit_code == 1
    assert "(work tree, 2 resources)" in result.output


def test_validate_plain_directory_with_worktree(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MESH)
    assert run("validate", "--repo", str(tmp_path), "--worktree").exit_code == 0


def test_repository_and_revision_errors_exit_two(repo: GitRepo, tmp_path: Path) -> None:
    repo.commit({"m.yaml": MESH})
    result = run("validate", "--repo", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "not a git repository" in result.output
    result = run("validate", "--repo", str(repo.path), "no-such-branch")
    assert result.exit_code == 2
    assert "revision 'no-such-branch' not found" in result.output
    assert run("validate", "--repo", str(repo.path), "--worktree", "HEAD").exit_code == 2
    assert run("validate", "--format", "yaml").exit_code == 2


def test_diff_text_and_json(repo: GitRepo) -> None:
    base = repo.commit({"m.yaml": MESH, "r.yaml": RETRY})
    head = repo.commit({"r.yaml": RETRY.replace("numRetries: 3", "numRetries: 5"), "m2.yaml": "type: Mesh\nname: other\n"})
    text = run("diff", "--repo", str(repo.path), base, head)
    assert text.exit_code == 0
    assert text.output.splitlines() == [
        "+ Mesh other  (m2.yaml:1)",
        "~ MeshRetry default/retry  (r.yaml:1)",
        "    /spec/to/0/default/http/numRetries: 3 → 5",
        "1 added, 1 changed, 0 removed",
    ]
    doc = json.loads(run("diff", "--repo", str(repo.path), "--format", "json", base).output)
    assert doc["base"] == base and doc["head"] == head
    assert doc["added"] == [{"type": "Mesh", "mesh": None, "name": "other", "file": "m2.yaml", "line": 1}]
    assert doc["changed"][0]["fields"] == [{"pointer": "/spec/to/0/default/http/numRetries", "op": "replace", "old": 3, "new": 5}]
    assert run("diff", "--repo", str(repo.path), head, head).output.strip() == "no changes"


def test_every_command_loads_under_the_name_it_is_listed_with() -> None:
    ctx = click.Context(cli)
    names = cli.list_commands(ctx)
    assert {"validate", "diff", "serve", "plan", "reconcile", "rollback", "resume", "history", "hook", "token", "inspect"} <= set(names)
    for name in names:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name


def test_a_command_that_prints_its_verdict_exits_with_it_and_nothing_else(repo: GitRepo) -> None:
    # `validate` prints the report and then exits 1: no "Error:" line of its own, no traceback.
    repo.commit({"bad.yaml": "type: Mesh\nname: Bad_Name\n"})
    result = CliRunner().invoke(cli, ["validate", "--repo", str(repo.path)])
    assert result.exit_code == 1, result.output
    assert "Error:" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.output.rstrip().splitlines()[-1].startswith("invalid: ")
