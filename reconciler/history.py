"""What happened to each commit: the attempts log, and a branch's history computed from it.

The control plane appends one JSON line per outcome to `<state-dir>/history.jsonl`
(`HistoryLog`); nothing is ever rewritten, so the file is an audit log that survives
restarts and can be read while the server runs. A line:

    {"v": 1, "revision": "<40 hex>", "branch": "main", "outcome": "applied", "message": "...",
     "errors": [{"file": ..., "line": ..., "resource": ..., "pointer": ..., "message": ...}],
     "at": "2025-06-01T10:00:00Z", "time": 1748772000.0, "trigger": "watch", "cause": "", "to": ""}

Outcomes written: `applied`, `rejected` (validation, or signature with cause
`VerificationError`), `held` (valid, not applied because serving is pinned), `rolled-back`
(was served, then a pin moved serving to `to`), `rejected-by-proxies` (Envoy NACKed it and
serving went back to `to`, with `serve --rollback-on-nack`).

`branch_history` joins the log with the branch's first-parent commits. A commit with no line
gets an outcome from its position: `superseded` when a newer commit was attempted (it was
never tried because a newer one came first), `pending` otherwise. A commit held while pinned
reads `superseded` once the pin is gone.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from reconciler.errors import escape_control
from reconciler.source.refs import commit_of_ref
from reconciler.source.revisions import is_on_history

__all__ = ["Record", "HistoryLog", "branch_history", "history_text", "problem_line", "is_commit_level", "OUTCOME_TEXT", "HISTORY_FILE"]

log = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"
_ROTATE_BYTES = 16 * 1024 * 1024
_MAX_ERRORS = 100

OUTCOME_TEXT = {
    "applied": "applied",
    "rejected": "rejected",
    "failed": "failed",
    "held": "held (pinned)",
    "rolled-back": "rolled back",
    "rejected-by-proxies": "rejected by proxies",
    "superseded": "superseded",
    "pending": "pending",
}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass(frozen=True, slots=True)
class Record:
    """One line of the log."""

    revision: str
    outcome: str
    message: str
    time: float
    branch: str = ""
    errors: tuple[Mapping[str, Any], ...] = ()
    trigger: str = ""
    """What started it: start, resume, watch, api, webhook, rollback, rollback-on-nack."""
    cause: str = ""
    """The condition reason when it is not the outcome's usual one (VerificationError, ProxiesRejected)."""
    to: str = ""
    """rolled-back and rejected-by-proxies: the revision serving moved to."""
    duration: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": 1,
            "revision": self.revision,
            "branch": self.branch,
            "outcome": self.outcome,
            "message": self.message,
            "errors": list(self.errors[:_MAX_ERRORS]),
            "at": _iso(self.time),
            "time": round(self.time, 3),
            "trigger": self.trigger,
            "cause": self.cause,
            "to": self.to,
        }
        if self.duration:
            out["durationSeconds"] = round(self.duration, 4)
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Record:
        return cls(
            str(doc["revision"]),
            str(doc["outcome"]),
            str(doc.get("message", "")),
            float(doc.get("time", 0.0)),
            str(doc.get("branch", "")),
            tuple(doc.get("errors") or ()),
            str(doc.get("trigger", "")),
            str(doc.get("cause", "")),
            str(doc.get("to", "")),
            float(doc.get("durationSeconds", 0.0)),
        )


class HistoryLog:
    """`<state-dir>/history.jsonl`, append-only; rotated once to `.1` past 16 MiB."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / HISTORY_FILE

    def append(self, record: Record) -> None:
        line = json.dumps(record.to_json(), separators=(",", ":"), default=str) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size > _ROTATE_BYTES:
                self.path.replace(self.path.with_name(HISTORY_FILE + ".1"))
            # One write of one line with O_APPEND: readers never see half a record
            # from this process, and a torn last line after a crash is skipped.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as e:
            log.error("cannot write the history log", extra={"path": str(self.path), "error": e.strerror})

    def read(self) -> list[Record]:
        """Every record, oldest first (the rotated file, then the current one)."""
        out: list[Record] = []
        for path in (self.path.with_name(HISTORY_FILE + ".1"), self.path):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                try:
                    out.append(Record.from_json(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn line: skipped, never fatal
        return out

    def latest(self, branch: str | None = None) -> dict[str, Record]:
        """The last record of each revision (of `branch`, when given)."""
        out: dict[str, Record] = {}
        for r in self.read():
            if r.revision and (branch is None or not r.branch or r.branch == branch):
                out[r.revision] = r
        return out


# -- a branch's history ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Commit:
    revision: str
    subject: str
    author: str
    time: float
    on_branch: bool = True


@dataclass(slots=True)
class _Entry:
    commit: _Commit
    outcome: str
    record: Record | None
    attempts: list[Record] = field(default_factory=list)


def _first_parent(repo: pygit2.Repository, head: str | None, limit: int) -> list[_Commit]:
    out: list[_Commit] = []
    if head is None:
        return out
    try:
        commit: pygit2.Commit | None = repo[head].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        return out
    while commit is not None and len(out) < limit:
        out.append(_describe(commit))
        commit = commit.parents[0] if commit.parents else None
    return out


def _describe(commit: pygit2.Commit, on_branch: bool = True) -> _Commit:
    subject = (commit.message or "").strip().splitlines()[0] if (commit.message or "").strip() else ""
    return _Commit(str(commit.id), subject, commit.author.name, float(commit.commit_time), on_branch)


def branch_history(
    repo: pygit2.Repository,
    branch: str,
    records: Iterable[Record],
    *,
    served: str | None,
    pinned: str | None,
    limit: int = 20,
) -> dict[str, Any]:
    """The branch's last `limit` first-parent commits, newest first, each with its outcome.

    The served and pinned commits are added when they are not among them (an older commit,
    or with `rollback --force` one off the branch).
    """
    head = commit_of_ref(repo, f"refs/heads/{branch}")
    commits = _first_parent(repo, head, limit)
    listed = {c.revision for c in commits}
    for extra in (served, pinned):
        if extra and extra not in listed:
            try:
                commit = repo[extra].peel(pygit2.Commit)
            except (KeyError, ValueError, pygit2.GitError):
                continue
            on_branch = head is not None and is_on_history(repo, extra, head)
            commits.append(_describe(commit, on_branch))
            listed.add(extra)
    by_revision: dict[str, list[Record]] = {}
    for r in records:
        if r.revision in listed and (not r.branch or r.branch == branch):
            by_revision.setdefault(r.revision, []).append(r)
    entries: list[_Entry] = []
    newer_attempted = False
    for c in commits:
        attempts = by_revision.get(c.revision, [])
        last = attempts[-1] if attempts else None
        if last is None:
            outcome = "superseded" if newer_attempted or (served is not None and _newer_served(commits, c, served)) else "pending"
        elif last.outcome == "held" and pinned is None:
            outcome = "pending" if c.revision == head and c.revision != served else "superseded"
        else:
            outcome = last.outcome
        if c.on_branch and attempts:
            newer_attempted = True
        entries.append(_Entry(c, outcome, last, attempts))
    return {
        "branch": branch,
        "head": head or "",
        "servedRevision": served or "",
        "pinnedRevision": pinned or "",
        "commits": [_entry_json(e, served, pinned) for e in entries],
    }


def _newer_served(commits: list[_Commit], c: _Commit, served: str) -> bool:
    """The served commit is listed before (newer than) `c` on the branch."""
    for other in commits:
        if other.revision == served:
            return other.on_branch
        if other.revision == c.revision:
            return False
    return False


def _entry_json(e: _Entry, served: str | None, pinned: str | None) -> dict[str, Any]:
    r = e.record
    return {
        "revision": e.commit.revision,
        "subject": e.commit.subject,
        "author": e.commit.author,
        "committedAt": _iso(e.commit.time),
        "onBranch": e.commit.on_branch,
        "outcome": e.outcome,
        "message": r.message if r is not None and e.outcome == r.outcome else "",
        "errors": list(r.errors) if r is not None and e.outcome == r.outcome else [],
        "attemptedAt": _iso(r.time) if r is not None else "",
        "trigger": r.trigger if r is not None else "",
        "cause": r.cause if r is not None else "",
        "to": r.to if r is not None else "",
        "served": e.commit.revision == served,
        "pinned": e.commit.revision == pinned,
        "attempts": len(e.attempts),
    }


def history_text(doc: Mapping[str, Any], *, show_errors: int = 3) -> str:
    """A table: newest first, `*` on the served commit, reasons indented under their commit."""
    served = doc.get("servedRevision") or ""
    pinned = doc.get("pinnedRevision") or ""
    head = doc.get("head") or ""
    top = f"branch {doc['branch']}: head {head[:12] or '-'}, serving {served[:12] or 'nothing'}"
    if pinned:
        top += f" (pinned to {pinned[:12]} by refs/reconciler/pin; `reconciler resume` follows {doc['branch']} again)"
    lines = [top, f"  {'COMMIT':<12}  {'OUTCOME':<27} {'ATTEMPTED':<20}  SUBJECT"]
    for c in doc.get("commits", []):
        marker = "*" if c["served"] else " "
        outcome = OUTCOME_TEXT.get(c["outcome"], c["outcome"])
        flags = [
            f
            for f, on in (("served", c["served"]), ("pinned", c["pinned"]), (f"not on {doc['branch']}", not c.get("onBranch", True)))
            if on
        ]
        if flags:
            outcome += f", {', '.join(flags)}"
        lines.append(f"{marker} {c['revision'][:12]:<12}  {outcome:<27} {c['attemptedAt'] or '-':<20}  {c['subject']}")
        if c["message"] and c["outcome"] not in ("applied",):
            message = c["message"].split("; first: ")[0] if c.get("errors") else c["message"]
            lines.append(f"  {'':<12}    {message}")
        errors = [e for e in c.get("errors", []) if not (is_commit_level(e) and e.get("message", "") in c["message"])]
        for e in errors[:show_errors]:
            lines.append(f"  {'':<12}      {problem_line(e)}")
        more = len(errors) - show_errors
        if more > 0:
            lines.append(f"  {'':<12}      … {more} more")
    # Subjects, reasons and file names come from the repository: one line each, shown as text.
    return "\n".join(map(escape_control, lines))


def is_commit_level(e: Mapping[str, Any]) -> bool:
    """An error about the commit itself (a signature, a NACK): no file, resource or pointer."""
    return not (e.get("file") or e.get("resource") or e.get("pointer"))


def problem_line(e: Mapping[str, Any]) -> str:
    """One error as JSON (Problem.to_json) on one line: `file:line: Kind mesh/name /pointer: message`."""
    if is_commit_level(e):
        return escape_control(str(e.get("message", "")))
    where = f"{e['file']}:{e['line']}" if e.get("file") and e.get("line") else (e.get("file") or "<repository>")
    res = e.get("resource") or {}
    mesh = f"{res['mesh']}/" if res.get("mesh") else ""
    ident = f" {res.get('type')} {mesh}{res.get('name')}" if res else ""
    pointer = f" {e['pointer']}" if e.get("pointer") else ""
    return escape_control(f"{where}:{ident}{pointer}: {e.get('message', '')}")
