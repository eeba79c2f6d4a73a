"""Reading commits from real repositories: bare and not, revisions, paths, caches, work trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.source.git import GitSource, SourceError, read_directory
from reconciler.types import ResourceKey
from reconciler.validate import validate
from tests.support import GitRepo, git

MESH = "type: Mesh\nname: default\n"


def retry(name: str, num: int = 3) -> str:
    return f"""\
type: MeshRetry
name: {name}
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        http:
          numRetries: {num}
"""


def keys(snapshot) -> list[ResourceKey]:
    return sorted(r.key for r in snapshot)


def test_reads_head_branch_tag_and_short_sha(repo: GitRepo) -> None:
    first = repo.commit({"meshes/default.yaml": MESH}, "mesh")
    git(repo.path, "tag", "v1")
    second = repo.commit({"policies/retry.yaml": retry("r1")}, "retry")
    source = GitSource(repo.path)
    assert source.snapshot("HEAD").revision == second
    assert source.snapshot("main").revision == second
    assert keys(source.snapshot("v1")) == [ResourceKey("Mesh", "", "default")]
    assert source.snapshot(first[:8]).revision == first
    assert source.snapshot("HEAD~1").revision == first


def test_unknown_revision_is_a_source_error(repo: GitRepo) -> None:
    repo.commit({"m.yaml": MESH})
    with pytest.raises(SourceError, match="revision 'nope' not found"):
        GitSource(repo.path).snapshot("nope")


def test_not_a_repository_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a git repository"):
        GitSource(tmp_path)


def test_bare_repository_receives_a_push_and_is_read(tmp_path: Path, repo: GitRepo) -> None:
    bare = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    repo.commit({"m.yaml": MESH, "r.yaml": retry("r1")})
    git(repo.path, "remote", "add", "origin", str(bare))
    git(repo.path, "push", "-q", "origin", "main")
    snapshot = GitSource(bare).snapshot("main")
    assert keys(snapshot) == [ResourceKey("Mesh", "", "default"), ResourceKey("MeshRetry", "default", "r1")]
    assert validate(snapshot).valid


def test_only_the_configured_path_is_read(repo: GitRepo) -> None:
    repo.commit({"mesh/m.yaml": MESH, "mesh/p/r.yaml": retry("r1"), "other/r.yaml": retry("r2"), "README.yaml": "not: kuma\n"})
    snapshot = GitSource(repo.path, path="./mesh/").snapshot()
    assert keys(snapshot) == [ResourceKey("Mesh", "", "default"), ResourceKey("MeshRetry", "default", "r1")]
    assert [r.origin.file for r in snapshot] == ["mesh/m.yaml", "mesh/p/r.yaml"]


def test_missing_path_and_escaping_path_are_errors(repo: GitRepo) -> None:
    repo.commit({"m.yaml": MESH})
    with pytest.raises(SourceError, match="does not exist"):
        GitSource(repo.path, path="nowhere").snapshot()
    with pytest.raises(SourceError, match="leaves the repository"):
        GitSource(repo.path, path="../x")


def test_dot_paths_and_other_extensions_are_skipped(repo: GitRepo) -> None:
    repo.commit(
        {
            "m.yml": MESH,
            ".github/workflows/ci.yaml": "on: push\n",
            "policies/.draft.yaml": "garbage: [",
            "notes.txt": "hello",
            "r.yaml": retry("r1"),
        }
    )
    snapshot = GitSource(repo.path).snapshot()
    assert snapshot.files == 2
    assert keys(snapshot) == [ResourceKey("Mesh", "", "default"), ResourceKey("MeshRetry", "default", "r1")]


def test_symlinks_are_skipped_with_a_warning_never_followed(repo: GitRepo, tmp_path: Path) -> None:
    outside = tmp_path / "secret.yaml"
    outside.write_text(retry("outside"))
    repo.write({"m.yaml": MESH})
    os.symlink(outside, repo.path / "link.yaml")
    os.symlink("m.yaml", repo.path / "inside-link.yaml")
    repo.commit()
    for snapshot in (GitSource(repo.path).snapshot(), read_directory(repo.path)):
        assert keys(snapshot) == [ResourceKey("Mesh", "", "default")]
        report = validate(snapshot)
        assert report.valid
        assert sorted((p.file, p.severity, p.message) for p in report.warnings) == [
            ("inside-link.yaml", "warning", "symbolic link skipped: links are never followed; commit the file itself"),
            ("link.yaml", "warning", "symbolic link skipped: links are never followed; commit the file itself"),
        ]


def test_next_commit_parses_only_changed_blobs(repo: GitRepo) -> None:
    files = {"m.yaml": MESH} | {f"policies/team-{i}/r.yaml": retry(f"r{i}") for i in range(30)}
    repo.commit(files)
    source = GitSource(repo.path)
    first = source.snapshot()
    assert source.parsed_blobs == 31
    repo.commit({"policies/team-7/r.yaml": retry("r7", num=5)})
    second = source.snapshot()
    assert source.parsed_blobs == 32
    # Unchanged files are the very same objects: nothing was re-parsed or re-built.
    unchanged = [r for r in second if r.name != "r7"]
    assert all(any(r is s for s in first) for r in unchanged)
    changed = next(r for r in second if r.name == "r7")
    assert changed.spec["to"][0]["default"]["http"]["numRetries"] == 5


def test_same_blob_at_two_paths_is_two_resources(repo: GitRepo) -> None:
    repo.commit({"m.yaml": MESH, "a/r.yaml": retry("r1"), "b/r.yaml": retry("r1")})
    snapshot = GitSource(repo.path).snapshot()
    report = validate(snapshot)
    (error,) = report.errors
    assert (error.file, error.line, error.pointer) == ("b/r.yaml", 2, "/name")
    assert "also defined at a/r.yaml:1" in error.message


def test_work_tree_includes_uncommitted_changes(repo: GitRepo) -> None:
    repo.commit({"m.yaml": MESH})
    repo.write({"r.yaml": retry("draft")})
    assert keys(GitSource(repo.path).snapshot()) == [ResourceKey("Mesh", "", "default")]
    work = read_directory(repo.path)
    assert work.revision is None
    assert keys(work) == [ResourceKey("Mesh", "", "default"), ResourceKey("MeshRetry", "default", "draft")]


def test_every_bad_file_is_reported_together(repo: GitRepo) -> None:
    repo.commit(
        {
            "m.yaml": MESH,
            "a.yaml": "type: [\n",
            "b.yaml": "- not a mapping\n",
            "c.yaml": "type: Nope\nname: x\n",
            "d.yaml": b"type: Mesh\nname: \xff\n",
            "e.yaml": retry("r1").replace("mesh: default", "mesh: missing"),
        }
    )
    report = validate(GitSource(repo.path).snapshot())
    assert sorted({p.file for p in report.errors}) == ["a.yaml", "b.yaml", "c.yaml", "d.yaml", "e.yaml"]
