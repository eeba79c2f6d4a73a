"""The few questions the commands and the engine ask of a git repository, so that only
`reconciler.source` (and the history store) imports pygit2.

`Repository` is re-exported as the type the callers name: a repository opened by
`reconciler.source.git.open_repository`. Reading refs is `reconciler.source.refs`; libgit2's
error is `reconciler.source.git.GitError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pygit2

from reconciler.source.git import open_repository

__all__ = ["Repository", "is_on_history", "has_path", "hooks_dir", "open_with_object_dirs"]

Repository = pygit2.Repository


def is_on_history(repo: Repository, commit: str, head: str) -> bool:
    """`commit` is `head` or one of its ancestors."""
    return commit == head or bool(repo.descendant_of(head, commit))


def has_path(commit: pygit2.Commit, path: str) -> bool:
    """`path` (a file or directory) exists in the tree of `commit` (from GitSource.resolve)."""
    try:
        commit.tree[path]
    except KeyError:
        return False
    return True


def hooks_dir(repo: Repository) -> Path:
    """Where git looks for this repository's hooks (`core.hooksPath`, else `<git dir>/hooks`)."""
    git_dir = Path(repo.path)
    try:
        configured = repo.config["core.hooksPath"]
    except KeyError:
        configured = None
    if configured:
        custom = Path(os.path.expanduser(str(configured)))
        # Relative paths are relative to where hooks run: the git dir of a bare repository,
        # the top of the work tree otherwise.
        base = git_dir if repo.is_bare or repo.workdir is None else Path(repo.workdir)
        return custom if custom.is_absolute() else base / custom
    return git_dir / "hooks"


def open_with_object_dirs(git_dir: str, object_dirs: Iterable[str]) -> Repository:
    """Open a repository that also reads objects from `object_dirs` (a push's quarantine,
    which libgit2 does not find by itself). Raises SourceError when it cannot be opened."""
    repo = open_repository(git_dir)
    seen = {os.path.realpath(os.path.join(repo.path, "objects"))}
    for directory in object_dirs:
        real = os.path.realpath(directory)
        if real in seen or not os.path.isdir(real):
            continue
        seen.add(real)
        repo.odb.add_disk_alternate(real)
    return repo
