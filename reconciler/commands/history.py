"""`reconciler history`, and `rollback` / `resume` without a server, from the repository and
the state directory.

The refs live in the repository `serve` reads: the repository itself for a local path, the
mirror `<state-dir>/mirror.git` for a remote URL. A server watching that repository sees a
pin written here within its poll interval (file events make it sooner).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from reconciler.commands.errors import CommandExit, InvalidConfig, RepositoryError
from reconciler.commands.options import (
    admin_token_file_option,
    branch_option,
    format_option,
    path_option,
    repo_option,
    server_option,
    state_dir_option,
    timeout_option,
)
from reconciler.commands.validate import report_text
from reconciler.history import HistoryLog, branch_history, history_text
from reconciler.source.git import GitError, GitSource, SourceError, open_repository
from reconciler.source.pins import PinConflict, share_pin
from reconciler.source.refs import APPLIED_REF, PIN_REF, commit_of_ref, delete_ref, write_ref
from reconciler.source.remote import GitCredentials, is_remote
from reconciler.source.revisions import Repository, is_on_history
from reconciler.validate import validate

__all__ = [
    "open_state_repository",
    "offline_history",
    "Pinned",
    "pin_offline",
    "unpin_offline",
    "history_command",
    "rollback_command",
    "resume_command",
]


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
    message = f"reconciler rollback: pin {sha[:12]} (serving {served[:12] if served else 'nothing'}, cli)"
    if is_remote(repo):
        _share(repository, repo, sha, previous, message)
    else:
        write_ref(repository, PIN_REF, sha, message)
    return Pinned(sha, previous, served, report_text(report).splitlines()[-1])


def unpin_offline(repo: str, state_dir: str) -> str | None:
    """Delete refs/reconciler/pin; the commit it named, or None when there was no pin."""
    repository = open_state_repository(repo, state_dir)
    pin = commit_of_ref(repository, PIN_REF)
    if pin is not None and is_remote(repo):
        _share(repository, repo, None, pin, f"reconciler resume: unpin {pin[:12]} (cli)")
    elif pin is not None:
        delete_ref(repository, PIN_REF)
    return pin


def _share(repository: Repository, url: str, new: str | None, expected: str | None, message: str) -> None:
    """For a remote, the pin lives on the remote (every replica reads it): compare-and-swap there."""
    try:
        share_pin(repository, url, new, expected, message, GitCredentials.load())
    except PinConflict as e:
        raise RepositoryError(
            f"the pin on {url} changed since the mirror's last fetch (now {e.current or 'none'}): nothing changed"
        ) from None
    except (SourceError, GitError, OSError, ValueError) as e:
        raise RepositoryError(f"cannot write the pin to {url}: {e}") from None


def _repo_or_server(repo: str | None, server: str | None) -> str:
    if server and repo:
        raise click.UsageError("give --server (ask the running server) or --repo (write the refs in the repository), not both")
    return repo or "."


@click.command("history")
@repo_option("The repository `serve` reads (a remote URL reads <state-dir>/mirror.git); default: the current directory.", default=None)
@state_dir_option("The state directory of `serve` (its history.jsonl holds the outcomes).")
@branch_option()
@server_option("Ask the running server at this HTTP API URL instead.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="Commits to list, newest first.")
@format_option
def history_command(repo: str | None, state_dir: str, branch: str, server: str | None, limit: int, fmt: str) -> None:
    """Commits of the tracked branch with their outcome; `*` marks the one served.

    Outcomes: applied, rejected (with the reason), held (valid, not applied while pinned),
    rolled back, rejected by proxies, superseded (never tried: a newer commit came first),
    pending (not tried yet). Exit 2 when the repository or server cannot be read.
    """
    where = _repo_or_server(repo, server)
    if server:
        from reconciler.commands.rollout import call

        code, doc = call(server, "GET", f"/history?limit={limit}")
        if code != 200:
            raise RepositoryError(f"{server}/history: HTTP {code}: {(doc or {}).get('error', '')}")
    else:
        doc = offline_history(where, state_dir, branch, limit)
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(history_text(doc))
        if doc.get("note"):
            click.echo(f"note: {doc['note']}")


@click.command("rollback")
@repo_option("The repository `serve` reads (a remote URL: its mirror in --state-dir); default: the current directory.", default=None)
@state_dir_option("The state directory of `serve`.")
@branch_option("The tracked branch (REV must be on its history unless --force).")
@path_option("Only read files under this directory (as `serve --path`).")
@server_option("Ask the running server at this HTTP API URL, and wait for the proxies' ACKs.")
@admin_token_file_option
@click.option("--force", is_flag=True, help="Pin a commit that is not on the branch's history.")
@timeout_option
@format_option
@click.argument("rev")
def rollback_command(
    repo: str | None,
    state_dir: str,
    branch: str,
    path: str,
    server: str | None,
    admin_token_file: str | None,
    force: bool,
    timeout: str,
    fmt: str,
    rev: str,
) -> None:
    """Pin serving to REV, an earlier commit that validates (refs/reconciler/pin).

    New commits are then validated and recorded, not applied, until `reconciler resume`. The
    pin survives restarts. Exit 0 pinned (with --server: applied and ACKed), 1 REV is invalid,
    not on the branch (without --force) or NACKed, 2 REV unknown, server unreachable, admin
    token refused, or timeout. With --server, --state-dir is where the admin token is.
    """
    where = _repo_or_server(repo, server)
    if server:
        from reconciler.commands.rollout import act, admin_token, parse_timeout, result_json, result_text

        token = admin_token(admin_token_file, state_dir)
        result = act(server, "rollback", parse_timeout(timeout), {"revision": rev, "force": force}, token=token)
        click.echo(result_json(result) if fmt == "json" else result_text(result))
        raise CommandExit(result.exit_code)

    pinned = pin_offline(where, state_dir, branch, path, rev, force=force)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "pinnedRevision": pinned.revision,
                    "previousPin": pinned.previous_pin,
                    "servedRevision": pinned.served,
                    "validation": pinned.report,
                },
                indent=2,
            )
        )
        return
    click.echo(f"pinned {branch} to {pinned.revision[:12]} (refs/reconciler/pin): {pinned.report}")
    click.echo(f"a server reading this repository applies it at its next check; `reconciler resume` follows {branch} again")


@click.command("resume")
@repo_option("The repository `serve` reads (a remote URL: its mirror in --state-dir); default: the current directory.", default=None)
@state_dir_option("The state directory of `serve`.")
@server_option("Ask the running server at this HTTP API URL, and wait for the proxies' ACKs.")
@admin_token_file_option
@timeout_option
@format_option
def resume_command(repo: str | None, state_dir: str, server: str | None, admin_token_file: str | None, timeout: str, fmt: str) -> None:
    """Delete the pin: serving follows the branch again.

    Exit 0 resumed (with --server: the branch head applied and ACKed), 1 the head is invalid or
    NACKed (the pinned commit keeps serving), 2 server unreachable, admin token refused, or
    timeout. With --server, --state-dir is where the admin token is.
    """
    where = _repo_or_server(repo, server)
    if server:
        from reconciler.commands.rollout import act, admin_token, parse_timeout, result_json, result_text

        result = act(server, "resume", parse_timeout(timeout), token=admin_token(admin_token_file, state_dir))
        click.echo(result_json(result) if fmt == "json" else result_text(result))
        raise CommandExit(result.exit_code)

    pin = unpin_offline(where, state_dir)
    if fmt == "json":
        click.echo(json.dumps({"unpinned": pin}, indent=2))
    elif pin is None:
        click.echo("not pinned: serving already follows the branch")
    else:
        click.echo(f"unpinned {pin[:12]}: a server reading this repository follows the branch again at its next check")
