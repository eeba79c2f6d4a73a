"""What one commit changed, resource by resource and field by field, against its first parent
(`GET /history/{revision}/diff`, and the GUI's diff page)."""

from __future__ import annotations

import time
from typing import Any

from reconciler.diff import diff
from reconciler.source.git import GitSource

__all__ = ["commit_diff"]


def commit_diff(source: GitSource, rev: str) -> dict[str, Any]:
    """Raises SourceError when `rev` names no commit. A root commit is compared with nothing."""
    commit = source.resolve(rev)
    parents = commit.parents
    before = source.snapshot_of(parents[0]).resources if parents else ()
    after = source.snapshot_of(commit)
    subject = commit.message.strip().splitlines()[0] if commit.message.strip() else ""
    return {
        "revision": str(commit.id),
        "parent": str(parents[0].id) if parents else None,
        "subject": subject,
        "author": commit.author.name,
        "committedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(commit.commit_time)),
        # The commit's own reading problems (YAML, sizes) are shown beside what it changed.
        "problems": [p.to_json() for p in after.problems],
        **diff(before, after.resources).to_json(),
    }
