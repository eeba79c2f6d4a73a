"""Read snapshots from a git repository (pygit2) or from a directory on disk.

Parsing is the expensive part of reading a commit, and consecutive commits share almost all
of their files. `GitSource` therefore caches what each blob parsed to (keyed by path and blob
id) and what each subtree contributed (keyed by path and tree id): reading the next commit
walks only the subtrees that changed and parses only the blobs that changed.

A commit is read within a budget of values (`MAX_COMMIT_NODES`, YAML aliases counted) and
of bytes (`MAX_COMMIT_BYTES`), which cached files draw from as if read again, so a commit is
refused at the same file and line whatever the cache holds. A commit that runs out is refused
as a whole, and nothing parsed for it is cached; nor is a file refused by its own budget. The
caches are bounded by the values and bytes they hold, not only by their number of entries,
so they cannot keep much more than one commit's worth however many commits go by.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath

import pygit2

from reconciler.errors import Problem
from reconciler.model import Snapshot
from reconciler.source.budgets import (
    MAX_COMMIT_BYTES,
    MAX_COMMIT_ENTRIES,
    MAX_COMMIT_NODES,
    MAX_FILE_BYTES,
    commit_budget,
    commit_too_large,
    commit_too_many_entries,
)
from reconciler.source.loader import FileResult, is_config_file, load_file, oversized_file
from reconciler.source.lru import BoundedLRU
from reconciler.source.yamldoc import NodeBudget

__all__ = [
    "GitSource",
    "SourceError",
    "read_directory",
    "normalize_subpath",
    "open_repository",
    "GitError",
]

GitError = pygit2.GitError
"""What libgit2 raises when a repository operation fails: callers above source catch it by this name."""

log = logging.getLogger(__name__)

_FILEMODE_LINK = pygit2.enums.FileMode.LINK if hasattr(pygit2, "enums") else 0o120000
_FILEMODE_COMMIT = pygit2.enums.FileMode.COMMIT if hasattr(pygit2, "enums") else 0o160000


class SourceError(Exception):
    """The repository, revision or path cannot be read (exit code 2 in the CLI)."""


def normalize_subpath(path: str | None) -> str:
    """`./policies/` → `policies`; empty means the repository root. Refuses `..`."""
    if not path:
        return ""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise SourceError(f"path {path!r} leaves the repository; give a path inside it")
    return "/".join(parts)


def open_repository(location: str | os.PathLike[str]) -> pygit2.Repository:
    """Open a bare or non-bare repository at `location` (or any directory inside one)."""
    found = pygit2.discover_repository(str(location))
    if found is None:
        raise SourceError(f"{location}: not a git repository (or any parent up to the filesystem root)")
    try:
        return pygit2.Repository(found)
    except pygit2.GitError as e:
        raise SourceError(f"{location}: cannot open repository: {e}") from None


@dataclass(frozen=True, slots=True)
class _TreeResult:
    files: tuple[FileResult, ...]
    warnings: tuple[Problem, ...]
    count: int
    nodes: int
    size: int
    cacheable: bool
    entries: int = 0
    """Files and folders walked under it (its weight in a commit's entry cap)."""


class _CommitOverBudget(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


@dataclass(slots=True)
class _Walk:
    """One commit being read: its budget, and what to cache once it was read within it."""

    budget: NodeBudget
    max_bytes: int
    max_entries: int = MAX_COMMIT_ENTRIES
    entries: int = 0
    """Files and folders walked so far (cached subtrees count theirs)."""
    read: int = 0
    """Bytes of the files read so far."""
    files: int = 0
    blobs: list[tuple[tuple[str, str], FileResult]] = field(default_factory=list)
    trees: list[tuple[tuple[str, str], _TreeResult]] = field(default_factory=list)

    def fits(self, nodes: int, size: int, entries: int = 0) -> bool:
        return nodes <= self.budget.remaining and self.read + size <= self.max_bytes and self.entries + entries <= self.max_entries

    def enter(self, path: str) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise _CommitOverBudget(commit_too_many_entries(path, self.max_entries))

    def charge(self, nodes: int, size: int) -> None:
        self.budget.spent += nodes
        self.read += size


class GitSource:
    """A repository to read commits from, with parse caches shared across commits."""

    def __init__(
        self,
        repo: pygit2.Repository | str | os.PathLike[str],
        path: str | None = None,
        cache_size: int = 50_000,
        *,
        max_commit_nodes: int = MAX_COMMIT_NODES,
        max_commit_bytes: int = MAX_COMMIT_BYTES,
        cache_nodes: int | None = None,
        max_commit_entries: int = MAX_COMMIT_ENTRIES,
    ) -> None:
        """`max_commit_nodes` / `max_commit_bytes`: values one commit may expand to and bytes
        its files may hold; each cache (blobs, trees) holds at most one commit's budget of
        both, or `cache_nodes` values."""
        self.repo = repo if isinstance(repo, pygit2.Repository) else open_repository(repo)
        self.path = normalize_subpath(path)
        self.max_commit_nodes = max_commit_nodes
        self.max_commit_bytes = max_commit_bytes
        self.max_commit_entries = max_commit_entries
        nodes = max_commit_nodes if cache_nodes is None else cache_nodes
        self._blobs: BoundedLRU[tuple[str, str], FileResult] = BoundedLRU(cache_size, nodes, max_commit_bytes)
        self._trees: BoundedLRU[tuple[str, str], _TreeResult] = BoundedLRU(cache_size, nodes, max_commit_bytes)
        self.parsed_blobs = 0
        """How many blobs were parsed (not served from cache): for tests and benchmarks."""

    @property
    def cached_nodes(self) -> int:
        """Values held by the blob cache (what its parsed files expanded to)."""
        return self._blobs.nodes

    def is_cached(self, path: str, blob_id: str) -> bool:
        """Whether what the blob `blob_id` at `path` parsed to is kept for the next commit."""
        return (path, blob_id) in self._blobs

    # -- revisions -------------------------------------------------------------------
    def resolve(self, rev: str) -> pygit2.Commit:
        """A branch, tag, full or short sha, or any rev-parse expression → its commit."""
        try:
            obj = self.repo.revparse_single(rev)
            commit = obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as e:
            raise SourceError(f"revision {rev!r} not found in {self.repo.path}: {e}") from None
        return commit

    def ref_target(self, ref: str) -> str | None:
        """The commit id a ref points to, or None when the ref does not exist."""
        try:
            return str(self.repo.references[ref].peel(pygit2.Commit).id)
        except (KeyError, pygit2.GitError, ValueError):
            return None

    # -- reading ---------------------------------------------------------------------
    def snapshot(self, rev: str = "HEAD") -> Snapshot:
        commit = self.resolve(rev)
        return self.snapshot_of(commit)

    def snapshot_of(self, commit: pygit2.Commit) -> Snapshot:
        tree = commit.tree
        if self.path:
            try:
                entry = tree[self.path]
            except KeyError:
                raise SourceError(f"path {self.path!r} does not exist at commit {str(commit.id)[:12]}") from None
            obj = self.repo[entry.id]
            if not isinstance(obj, pygit2.Tree):
                raise SourceError(f"path {self.path!r} is not a directory at commit {str(commit.id)[:12]}")
            tree = obj
        walk = _Walk(commit_budget(self.max_commit_nodes), self.max_commit_bytes, self.max_commit_entries)
        try:
            result = self._read_tree(tree, self.path, walk)
        except _CommitOverBudget as e:
            return _over_budget(str(commit.id), e.problem, walk.files)
        for blob_key, parsed in walk.blobs:
            self._blobs.remember(blob_key, parsed, parsed.nodes, parsed.size)
        for tree_key, subtree in walk.trees:
            self._trees.remember(tree_key, subtree, subtree.nodes, subtree.size)
        return _assemble(str(commit.id), result.files, result.warnings, result.count)

    def _read_tree(self, tree: pygit2.Tree, prefix: str, walk: _Walk) -> _TreeResult:
        key = (prefix, str(tree.id))
        cached = self._trees.get(key)
        # A cached subtree that would overrun what is left is read again, file by file, so
        # that the refusal names the same file and line as a read without cache.
        if cached is not None and walk.fits(cached.nodes, cached.size, cached.entries):
            walk.charge(cached.nodes, cached.size)
            walk.entries += cached.entries
            walk.files += cached.count
            return cached
        start = walk.entries
        files: list[FileResult] = []
        warnings: list[Problem] = []
        count = 0
        cacheable = True
        for entry in sorted(tree, key=lambda e: e.name or ""):
            name = entry.name or ""
            path = f"{prefix}/{name}" if prefix else name
            walk.enter(path)
            if name.startswith("."):
                continue
            if entry.filemode == _FILEMODE_LINK:
                if is_config_file(path) or entry.type_str == "blob":
                    warnings.append(_symlink_warning(path))
                continue
            if entry.filemode == _FILEMODE_COMMIT:
                continue  # submodules are other repositories
            if entry.type_str == "tree":
                sub = self._read_tree(self.repo[entry.id], path, walk)  # type: ignore[arg-type]
                files.extend(sub.files)
                warnings.extend(sub.warnings)
                count += sub.count
                cacheable = cacheable and sub.cacheable
            elif entry.type_str == "blob" and is_config_file(path):
                parsed = self._read_blob(path, entry.id, walk)
                files.append(parsed)
                count += 1
                cacheable = cacheable and not parsed.over_budget
        result = _TreeResult(
            tuple(files), tuple(warnings), count, sum(f.nodes for f in files), sum(f.size for f in files), cacheable, walk.entries - start
        )
        if cacheable:
            walk.trees.append((key, result))
        return result

    def _read_blob(self, path: str, oid: pygit2.Oid, walk: _Walk) -> FileResult:
        key = (path, str(oid))
        walk.files += 1
        cached = self._blobs.get(key)
        if cached is not None and walk.fits(cached.nodes, cached.size):
            walk.charge(cached.nodes, cached.size)
            return cached
        blob = self.repo[oid]
        size: int = blob.size  # type: ignore[attr-defined]
        # Large blobs are refused by their size, without reading them into memory; so is the
        # blob that takes the commit past its bytes.
        if size > MAX_FILE_BYTES:
            result = oversized_file(path, size)
        elif not walk.fits(0, size):
            raise _CommitOverBudget(commit_too_large(path, walk.max_bytes))
        else:
            walk.read += size
            result = load_file(path, blob.data, walk.budget)  # type: ignore[attr-defined]
        self.parsed_blobs += 1
        if not result.over_budget:
            walk.blobs.append((key, result))
        elif walk.budget.remaining == 0:
            raise _CommitOverBudget(result.problems[0])
        return result


def _symlink_warning(path: str) -> Problem:
    return Problem(path, None, None, "", "symbolic link skipped: links are never followed; commit the file itself", "warning")


def _over_budget(revision: str | None, problem: Problem, count: int) -> Snapshot:
    """A commit that ran out of its budget: refused as a whole with the one problem, since
    the files it did not read would make any other finding misleading."""
    return Snapshot(revision, (), (problem,), count)


def _assemble(
    revision: str | None, files: tuple[FileResult, ...] | list[FileResult], warnings: tuple[Problem, ...] | list[Problem], count: int
) -> Snapshot:
    files = sorted(files, key=lambda f: f.path)
    resources = tuple(r for f in files for r in f.resources)
    problems = tuple(p for f in files for p in f.problems) + tuple(warnings)
    return Snapshot(revision, resources, problems, count)


def read_directory(
    root: str | os.PathLike[str],
    path: str | None = None,
    max_commit_nodes: int = MAX_COMMIT_NODES,
    max_commit_bytes: int = MAX_COMMIT_BYTES,
    max_commit_entries: int = MAX_COMMIT_ENTRIES,
) -> Snapshot:
    """Read the files on disk under `root`/`path` (a work tree with uncommitted changes).

    Symbolic links are reported and skipped, never followed, so nothing outside the
    directory can be read through them. The files share one budget of values and one of
    bytes, as a commit's do.
    """
    budget = commit_budget(max_commit_nodes)
    read = 0
    base = FsPath(root)
    sub = normalize_subpath(path)
    top = base / sub if sub else base
    if not top.is_dir():
        raise SourceError(f"{top}: not a directory")
    files: list[FileResult] = []
    warnings: list[Problem] = []
    for entries, rel in enumerate(_walk(top), 1):
        full = top / rel
        shown = f"{sub}/{rel}" if sub else rel
        if entries > max_commit_entries:
            return _over_budget(None, commit_too_many_entries(shown, max_commit_entries), len(files))
        st = full.lstat()
        if stat.S_ISLNK(st.st_mode):
            warnings.append(_symlink_warning(shown))
            continue
        if not stat.S_ISREG(st.st_mode) or not is_config_file(shown):
            continue
        if st.st_size > MAX_FILE_BYTES:
            files.append(oversized_file(shown, st.st_size))
            continue
        if read + st.st_size > max_commit_bytes:
            return _over_budget(None, commit_too_large(shown, max_commit_bytes), len(files) + 1)
        parsed = load_file(shown, full.read_bytes(), budget)
        read += parsed.size
        if parsed.over_budget and budget.remaining == 0:
            return _over_budget(None, parsed.problems[0], len(files) + 1)
        files.append(parsed)
    return _assemble(None, files, warnings, len(files))


def _walk(top: FsPath) -> Iterator[str]:
    """Relative paths of entries under `top`, sorted, skipping dot-entries, not following links."""
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        rel_dir = os.path.relpath(dirpath, top)
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                yield d if rel_dir == "." else f"{rel_dir}/{d}"
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            if f.startswith("."):
                continue
            yield f if rel_dir == "." else f"{rel_dir}/{f}"
