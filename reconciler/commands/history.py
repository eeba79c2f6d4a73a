"""`reconciler history`, and `rollback` / `resume` without a server, from the repository and
the state directory.

The refs live in the repository `serve` reads: the repository itself for a local path, the
mirror `<state-dir>/mirror.git` for a remote URL. A server watching that repository sees a
pin written here within its poll interval (file events make it sooner).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.commands.errors import InvalidConfig, RepositoryError
from reconciler.commands.validate import report_text
from reconciler.history import HistoryLog, branch_history
from reconciler.source.git import APPLIED_REF, PIN_REF, GitSource, SourceError, delete_ref, open_repository, write_ref
from reconciler.source.remote import is_remote
from reconciler.source.revisions import Repository, commit_of_ref, is_on_history
from reconciler.validate import validate

__all__ = ["open_state_repository", "offline_history", "Pinned", "pin_offline", "unpin_offline"]


def open_state_repository(repo: str, state_dir: str) -> Repository:
    """The repository `serve --repo REPO --state-dir STATE` reads."""
    if is_remote(repo):
        mirror = Path(state_dir) / "mirror.git"
        if not mirror.exists():
            raise RepositoryError(f"no mirror of {repo} in {mirror}: `serve` creates it; give the same --state-dir")
        repo = str(mirror)
    try:
        return open_repository(repo)
    except SourceError as e:
        raise RepositoryError(str(e)) from None


def offline_history(repo: str, state_dir: str, branch: str, limit: int) -> dict[str, Any]:
    repository = open_state_repository(repo, state_dir)
    if commit_of_ref(repository, f"refs/heads/{branch}") is None:
        raise RepositoryError(f"branch {branch!r} not found in {repository.path}")
    log = HistoryLog(state_dir)
    doc = branch_history(
        repository,
        branch,
        log.read(),
        served=commit_of_ref(repository, APPLIED_REF),
        pinned=commit_of_ref(repository, PIN_REF),
        limit=limit,
    )
    if not log.path.exists():
        doc["note"] = f"no attempts recorded in {log.path}: outcomes are known only for commits a server with this --state-dir tried"
    return doc


@dataclass(frozen=True, slots=True)
class Pinned:
    revision: str
    previous_pin: str | None
    served: str | None
    report: str
    """`validate`'s summary of the pinned commit."""


def pin_offline(repo: str, state_dir: str, branch: str, path: str, rev: str, *, force: bool) -> Pinned:
    """Write refs/reconciler/pin after the checks `serve` makes: a known, valid commit on the branch.

    Unknown revision: RepositoryError (2). Not on the branch without `force`, or invalid: InvalidConfig (1).
    """
    repository = open_state_repository(repo, state_dir)
    try:
        source = GitSource(repository, path)
        commit = source.resolve(rev)
        snapshot = source.snapshot_of(commit)
    except SourceError as e:
        raise RepositoryError(str(e)) from None
    sha = str(commit.id)
    head = commit_of_ref(repository, f"refs/heads/{branch}")
    if not force and (head is None or not is_on_history(repository, sha, head)):
        raise InvalidConfig(f"{sha[:12]} is not on the history of {branch}: refusing to pin it (--force pins it anyway)")
    report = validate(snapshot)
    if not report.valid:
        raise InvalidConfig(report_text(report) + f"\nrefusing to pin {sha[:12]}: it does not validate")
    previous = commit_of_ref(repository, PIN_REF)
    served = commit_of_ref(repository, APPLIED_REF)
    write_ref(repository, PIN_REF, sha, f"reconciler rollback: pin {sha[:12]} (serving {served[:12] if served else 'nothing'}, cli)")
    return Pinned(sha, previous, served, report_text(report).splitlines()[-1])


def unpin_offline(repo: str, state_dir: str) -> str | None:
    """Delete refs/reconciler/pin; the commit it named, or None when there was no pin."""
    repository = open_state_repository(repo, state_dir)
    pin = commit_of_ref(repository, PIN_REF)
    if pin is not None:
        delete_ref(repository, PIN_REF)
    return pin
