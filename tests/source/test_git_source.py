"""Reading commits from real repositories: bare and not, revisions, paths, caches, work trees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.source.git import GitSource, SourceError, read_directory
from reconciler.source.loader import load_file
from reconciler.types import ResourceKey
from reconciler.validate import validate
from tests.source.test_loader import FILE_BUDGET_MESSAGE, alias_bomb
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


def commit_budget_message(limit: int) -> str:
    return (
        f"the commit's YAML files expand to more than {limit:,} values in all, counting each use of an alias (*ref) in full; "
        "this file reached the limit here: write the values out instead of aliases, or keep fewer files under the configured path"
    )


def located(snapshot) -> list[tuple[str | None, int | None, str]]:
    return [(p.file, p.line, p.message) for p in snapshot.problems]


def nodes_of(text: str) -> int:
    return load_file("x.yaml", text.encode()).nodes


def test_validate_refuses_the_alias_bomb_file_at_the_line_where_its_budget_ran_out(repo: GitRepo) -> None:
    # The file: 100 documents of 9 lines, each under the old per-document limit.
    repo.commit({"m.yaml": MESH, "bomb.yaml": alias_bomb(100)})
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "--repo", str(repo.path), "HEAD"],
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard; the refusal takes well under a second
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[0] == f"bomb.yaml:17: {FILE_BUDGET_MESSAGE}"
    assert "Traceback" not in done.stderr


def test_file_refused_by_its_budget_is_not_cached_and_is_refused_again_in_the_next_commit(repo: GitRepo) -> None:
    repo.commit({"m.yaml": MESH, "policies/bomb.yaml": alias_bomb(3)})
    source = GitSource(repo.path)
    assert located(source.snapshot()) == [("policies/bomb.yaml", 17, FILE_BUDGET_MESSAGE)]
    bomb = git(repo.path, "rev-parse", "HEAD:policies/bomb.yaml").stdout.strip()
    assert not source.is_cached("policies/bomb.yaml", bomb)
    assert source.cached_nodes == nodes_of(MESH)  # the Mesh is kept, nothing of the bomb

    # policies/ is the same tree in the next commit: only a cache could skip reading it again.
    repo.commit({"r.yaml": retry("r1")})
    parsed = source.parsed_blobs
    second = source.snapshot()
    assert source.parsed_blobs == parsed + 2  # r.yaml, and the bomb once more; m.yaml came from the cache
    assert located(second) == [("policies/bomb.yaml", 17, FILE_BUDGET_MESSAGE)]
    assert keys(second) == [ResourceKey("Mesh", "", "default"), ResourceKey("MeshRetry", "default", "r1")]
    assert not source.is_cached("policies/bomb.yaml", bomb)


def test_commit_budget_is_shared_by_its_files_and_refuses_the_commit_where_it_runs_out(repo: GitRepo) -> None:
    repo.commit({"m.yaml": MESH} | {f"policies/r{i}.yaml": retry(f"r{i}") for i in range(6)})
    per_file = nodes_of(retry("r0"))
    # m.yaml and r0-r2 fit; r3 runs out on its 6th value, the targetRef mapping on line 6.
    limit = nodes_of(MESH) + 3 * per_file + 5
    source = GitSource(repo.path, max_commit_nodes=limit)
    snapshot = source.snapshot()
    assert located(snapshot) == [("policies/r3.yaml", 6, commit_budget_message(limit))]
    assert snapshot.resources == ()  # refused as a whole: the unread files would make any other finding wrong
    assert source.parsed_blobs == 5  # r4 and r5 were never read
    assert source.cached_nodes == 0  # nothing parsed for a refused commit is kept
    assert [p.render() for p in validate(snapshot).errors] == [f"policies/r3.yaml:6: {commit_budget_message(limit)}"]


def test_commit_budget_refuses_at_the_same_line_whether_files_come_from_the_cache_or_not(repo: GitRepo) -> None:
    repo.commit({"m.yaml": MESH} | {f"policies/r{i}.yaml": retry(f"r{i}") for i in range(4)})
    limit = nodes_of(MESH) + 4 * nodes_of(retry("r0")) + 10
    warm = GitSource(repo.path, max_commit_nodes=limit)
    assert warm.snapshot().problems == ()
    # a.yaml sorts first and takes 14 values: the cached policies/ subtree no longer fits, and
    # r3 runs out on its 11th value (`kind: Mesh` on line 9).
    repo.commit({"a.yaml": retry("extra")})
    cold = GitSource(repo.path, max_commit_nodes=limit)
    expected = [("policies/r3.yaml", 9, commit_budget_message(limit))]
    assert located(cold.snapshot()) == expected
    parsed = warm.parsed_blobs
    assert located(warm.snapshot()) == expected
    assert warm.parsed_blobs == parsed + 2  # a.yaml, and r3 read again to find the line; the rest cached
    # and once the commit is back within its budget, it reads as before
    repo.commit({"a.yaml": None})
    assert warm.snapshot().problems == ()


def test_work_tree_files_share_one_budget(repo: GitRepo) -> None:
    repo.write({"m.yaml": MESH} | {f"r{i}.yaml": retry(f"r{i}") for i in range(3)})
    limit = nodes_of(MESH) + 2 * nodes_of(retry("r0")) + 5
    work = read_directory(repo.path, max_commit_nodes=limit)
    assert located(work) == [("r2.yaml", 6, commit_budget_message(limit))]
    assert work.resources == ()


def test_blob_cache_keeps_no_more_values_than_it_is_allowed(repo: GitRepo) -> None:
    repo.commit({"m.yaml": MESH} | {f"r{i}.yaml": retry(f"r{i}") for i in range(10)})
    source = GitSource(repo.path, cache_nodes=100)
    assert len(source.snapshot()) == 11
    assert 0 < source.cached_nodes <= 100
    repo.commit({f"r{i}.yaml": retry(f"r{i}", num=5) for i in range(10)})
    second = source.snapshot()
    assert source.cached_nodes <= 100
    assert {r.spec["to"][0]["default"]["http"]["numRetries"] for r in second if r.type == "MeshRetry"} == {5}


def test_file_heavier_than_the_whole_cache_is_not_kept_and_flushes_nothing(repo: GitRepo) -> None:
    repo.commit({"m.yaml": MESH} | {f"r{i}.yaml": retry(f"r{i}") for i in range(5)})
    source = GitSource(repo.path, cache_nodes=100)
    source.snapshot()
    held = source.cached_nodes
    assert held == nodes_of(MESH) + 5 * nodes_of(retry("r0"))
    repo.commit({"z.yaml": "type: Mesh\nname: wide\nconstraints: [" + ", ".join(["x"] * 150) + "]\n"})
    assert len(source.snapshot()) == 7
    assert not source.is_cached("z.yaml", git(repo.path, "rev-parse", "HEAD:z.yaml").stdout.strip())
    assert source.cached_nodes == held


def commit_bytes_message(limit: int) -> str:
    return f"the commit's YAML files are over {limit:,} bytes in all, and this file passed the limit: keep fewer or smaller files under the configured path"


def test_commit_byte_budget_counts_every_path_even_when_they_share_one_blob(repo: GitRepo) -> None:
    # Git stores identical files once: a small push can name one large blob from many paths,
    # few values each, all of them read and kept.
    padding = "# " + "x" * 2_000 + "\n"
    repo.commit({"m.yaml": MESH} | {f"copies/c{i}.yaml": padding for i in range(5)})
    limit = len(MESH) + 3 * len(padding) + 10  # m.yaml and c0-c2 fit, in either reading order
    source = GitSource(repo.path, max_commit_bytes=limit)
    snapshot = source.snapshot()
    assert located(snapshot) == [("copies/c3.yaml", 1, commit_bytes_message(limit))]
    assert snapshot.resources == ()
    assert source.parsed_blobs == 3  # c3 was refused by its size, unread; c4 and m.yaml never reached
    assert located(read_directory(repo.path, max_commit_bytes=limit)) == [("copies/c3.yaml", 1, commit_bytes_message(limit))]
    # Within the budget, the same commit reads as usual.
    assert keys(GitSource(repo.path, max_commit_bytes=len(MESH) + 5 * len(padding)).snapshot()) == [ResourceKey("Mesh", "", "default")]


def test_a_commit_with_more_entries_than_the_cap_is_refused_where_it_passes_it(repo: GitRepo) -> None:
    # Millions of empty files push in a few KiB and cost seconds each to walk: the walk is capped,
    # counting every file and folder under the configured path (YAML or not), cached or not.
    repo.commit({"m.yaml": MESH, "docs/a.md": "a", "docs/b.md": "b", "policies/r0.yaml": retry("r0"), "policies/r1.yaml": retry("r1")})
    assert GitSource(repo.path, max_commit_entries=7).snapshot().problems == ()  # docs/ and its 2, m.yaml, policies/ and its 2
    refusal = (
        "policies/r1.yaml: the configured path holds more than {} files and folders, and reading stopped here: "
        "point the reconciler at the directory of the mesh configuration (--path)"
    )
    cold = GitSource(repo.path, max_commit_entries=6).snapshot()
    assert ([p.render() for p in cold.problems], cold.resources) == ([refusal.format(6)], ())
    warm = GitSource(repo.path, max_commit_entries=7)
    assert warm.snapshot().problems == ()
    repo.commit({"docs/c.md": "c"})  # 8 entries: the cached policies/ subtree counts its own too
    assert [p.render() for p in warm.snapshot().problems] == [refusal.format(7)]
    assert [p.render() for p in GitSource(repo.path, max_commit_entries=7).snapshot().problems] == [refusal.format(7)]


def test_a_work_tree_with_more_entries_than_the_cap_is_refused(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"n{i}.md").write_text("x")
    (tmp_path / "z.yaml").write_text(MESH)
    assert read_directory(tmp_path, max_commit_entries=6).problems == ()
    assert [p.file for p in read_directory(tmp_path, max_commit_entries=5).problems] == ["z.yaml"]
