"""Parse a list of blobs of a repository: the part of reading a commit that other processes can do.

A worker process gets the repository's path and (path, blob id) pairs, never the bytes, and opens
the repository once. Each file is parsed with a budget of its own; the reader that receives the
results charges them to the commit's budget (see `GitSource.snapshot_of`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pygit2

from reconciler.source.budgets import MAX_FILE_BYTES
from reconciler.source.git import open_repository
from reconciler.source.loader import ParsedFile, parse_file

__all__ = ["parse_blobs", "repository_path"]

_OPEN: dict[str, pygit2.Repository] = {}
"""Repositories this process opened, by path (a worker serves many batches)."""


def repository_path(repo: pygit2.Repository) -> str:
    return str(repo.path)


def parse_blobs(repo: pygit2.Repository | str, items: Sequence[tuple[str, str]]) -> list[tuple[tuple[str, str], ParsedFile]]:
    """Each of `items` ((path, blob id) pairs) with its parsed file; files too large to read are
    left out (the reader refuses them by their size without reading them)."""
    if isinstance(repo, str):
        opened = _OPEN.get(repo)
        if opened is None:
            opened = _OPEN[repo] = open_repository(repo)
        repo = opened
    out = []
    for path, oid in items:
        blob = repo[oid]
        if blob.size > MAX_FILE_BYTES:  # type: ignore[attr-defined]
            continue
        out.append(((path, oid), parse_file(path, blob.data)))  # type: ignore[attr-defined]
    return out
