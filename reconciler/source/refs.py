"""The reconciler's own refs in the repository it reads: what is served and what is pinned.

Git is also the state: `refs/reconciler/applied` names the commit served and
`refs/reconciler/pin` the commit a rollback pinned serving to. Every update lands in the ref's
reflog, so `git log -g refs/reconciler/applied` is the audit trail.
"""

from __future__ import annotations

import time
from pathlib import Path as FsPath

import pygit2

__all__ = ["APPLIED_REF", "PIN_REF", "write_ref", "delete_ref", "commit_of_ref"]

APPLIED_REF = "refs/reconciler/applied"
"""The commit being served; each update is in its reflog (`git log -g refs/reconciler/applied`)."""
PIN_REF = "refs/reconciler/pin"
"""The commit a rollback pinned serving to; absent when following the branch."""


def commit_of_ref(repo: pygit2.Repository, name: str) -> str | None:
    """The commit `name` points to (peeled), or None when the ref is missing or unreadable."""
    try:
        return str(repo.references[name].peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError):
        return None


def write_ref(repo: pygit2.Repository, name: str, revision: str, message: str) -> None:
    """Point `name` at `revision` and record the update in its reflog with `message` (nothing
    when it already points there).

    libgit2 writes reflogs only where git's `core.logAllRefUpdates` would (never in a bare
    repository, never outside refs/heads by default); when it did not, the entry is appended
    here, in git's format, so `git log -g <name>` shows every update.
    """
    log_path = FsPath(repo.path) / "logs" / name
    before = log_path.stat().st_size if log_path.exists() else -1
    old = _ref_of(repo, name)
    if old == revision:
        return  # nothing changed: no reflog entry either
    repo.create_reference_direct(name, pygit2.Oid(hex=revision), True, message=message)
    after = log_path.stat().st_size if log_path.exists() else -1
    if after != before:
        return
    try:
        who = repo.default_signature
        ident = f"{who.name} <{who.email}>"
    except (KeyError, pygit2.GitError, ValueError):
        ident = "mesh-reconciler <mesh-reconciler@localhost>"
    line = f"{old or '0' * 40} {revision} {ident} {int(time.time())} +0000\t{message.splitlines()[0] if message else ''}\n"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(line)


def delete_ref(repo: pygit2.Repository, name: str) -> bool:
    """Delete `name` (and its reflog, as git does); False when it did not exist."""
    try:
        repo.references.delete(name)
    except KeyError:
        return False
    (FsPath(repo.path) / "logs" / name).unlink(missing_ok=True)
    return True


def _ref_of(repo: pygit2.Repository, name: str) -> str | None:
    try:
        return str(repo.references[name].target)
    except (KeyError, pygit2.GitError, ValueError):
        return None
