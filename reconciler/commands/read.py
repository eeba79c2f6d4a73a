"""Read a snapshot the way every command does: a git revision, or the files on disk."""

from __future__ import annotations

from reconciler.commands.errors import RepositoryError
from reconciler.model import Snapshot
from reconciler.source.git import GitSource, SourceError, read_directory

__all__ = ["read_snapshot", "open_source"]


def open_source(repo: str, path: str | None) -> GitSource:
    try:
        return GitSource(repo, path)
    except SourceError as e:
        raise RepositoryError(str(e)) from None


def read_snapshot(repo: str, path: str | None, rev: str | None, worktree: bool, source: GitSource | None = None) -> Snapshot:
    """`rev` of the repository at `repo`, or with `worktree` the files on disk under it."""
    try:
        if worktree:
            return read_directory(repo, path)
        src = source or GitSource(repo, path)
        return src.snapshot(rev or "HEAD")
    except SourceError as e:
        raise RepositoryError(str(e)) from None
