"""`reconciler validate`: one commit or work tree → a Report.

Exit 3 means a bug in mesh-reconciler, never a traceback: an exception that escapes the
command becomes one line (`bugs_as_one_line`, `InternalBug`), and a report holding an
internal error (a check that raised; the other problems are still listed) exits 3 too.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from reconciler.commands.errors import CommandExit, exit_code_of
from reconciler.commands.options import format_option, path_option, repo_option, signature_options
from reconciler.commands.read import read_snapshot
from reconciler.errors import escape_control
from reconciler.model import Snapshot
from reconciler.validate import Report, validate
from reconciler.validate.bugs import describe_bug

__all__ = [
    "run_validate",
    "report_json",
    "report_text",
    "resources_text",
    "InternalBug",
    "EXIT_BUG",
    "bugs_as_one_line",
    "validate_command",
]

log = logging.getLogger(__name__)

EXIT_BUG = 3
"""An internal error: a bug in mesh-reconciler, not in the configuration."""


class InternalBug(click.ClickException):
    """Printed as one line (`Error: internal error (a bug in mesh-reconciler) ...`), exit 3."""

    exit_code = EXIT_BUG


@contextmanager
def bugs_as_one_line(doing: str) -> Iterator[None]:
    """Turn an exception that is not the command's own (click's, SystemExit) into InternalBug;
    its traceback goes to the debug log (`reconciler -v ...`)."""
    try:
        yield
    except (click.ClickException, CommandExit):
        raise
    except Exception as e:
        log.debug("internal error", exc_info=e)
        raise InternalBug(describe_bug(e, doing)) from None


def run_validate(repo: str, path: str | None, rev: str | None, worktree: bool) -> tuple[Snapshot, Report]:
    """The snapshot and its report, with the warnings only the mesh model can give (dead policies)."""
    from reconciler.commands.mesh_warnings import with_mesh_warnings

    snapshot = read_snapshot(repo, path, rev, worktree)
    return snapshot, with_mesh_warnings(snapshot, validate(snapshot))


def report_json(report: Report) -> str:
    doc: dict[str, Any] = {
        "valid": report.valid,
        "revision": report.revision,
        "resources": report.resources,
        "errors": [p.to_json() for p in report.errors],
        "warnings": [p.to_json() for p in report.warnings],
    }
    return json.dumps(doc, indent=2)


def report_text(report: Report) -> str:
    lines = [p.render() for p in report.problems]
    where = f"revision {report.revision[:12]}" if report.revision else "work tree"
    errors = report.errors
    if errors:
        files = len({p.file for p in errors})
        noun = "error" if len(errors) == 1 else "errors"
        lines.append(f"invalid: {len(errors)} {noun} in {files} file{'s' if files != 1 else ''} ({where}, {_resources(report.resources)})")
    else:
        lines.append(f"valid: {_resources(report.resources)} ({where})")
    return "\n".join(lines)


def _resources(n: int) -> str:
    return f"{n} resource" if n == 1 else f"{n} resources"


def resources_text(snapshot: Snapshot) -> str:
    counts = Counter(r.type for r in snapshot)
    out = [f"{'TYPE':<28} {'MESH':<12} {'NAME':<36} SOURCE"]
    for r in sorted(snapshot, key=lambda r: r.key):
        where = f"{r.origin.file}:{r.origin.line}" if r.origin else ""
        out.append(f"{r.type:<28} {r.mesh or '-':<12} {r.name:<36} {where}")
    out.append("")
    out.append(", ".join(f"{n} {t}" for t, n in sorted(counts.items())))
    return "\n".join(map(escape_control, out))


@click.command("validate")
@repo_option("Repository (bare or with a work tree), or a directory with --worktree.")
@path_option()
@click.option("--worktree", is_flag=True, help="Validate the files on disk, including uncommitted changes.")
@format_option
@click.option("--show-resources", is_flag=True, help="Also list the resources that were read.")
@signature_options(
    "Also require an SSH signature by a key in this allowed-signers file (as serve --verify-signatures).",
    "Also accept GPG signatures by the keys of this (binary) keyring.",
)
@click.argument("rev", required=False)
def validate_command(
    repo: str,
    path: str,
    worktree: bool,
    fmt: str,
    show_resources: bool,
    allowed_signers: str | None,
    gpg_keyring: str | None,
    rev: str | None,
) -> None:
    """Validate one revision (default HEAD) or the work tree.

    Exit 0 when valid (and, with --verify-signatures/--gpg-keyring, signed by a trusted key),
    1 with errors, 2 when the repository or revision cannot be read, 3 on an internal error
    (a bug in mesh-reconciler: one line says where; `reconciler -v validate` logs the traceback).
    """
    from reconciler.commands.verify import check_signature, policy_of

    with bugs_as_one_line("validating"):
        if worktree and rev:
            raise click.UsageError("give either REV or --worktree, not both")
        policy = policy_of(allowed_signers, gpg_keyring)
        if policy is not None and worktree:
            raise click.UsageError("--verify-signatures checks a commit: drop --worktree")
        snapshot, report = run_validate(repo, path, rev, worktree)
        verdict = check_signature(repo, rev or "HEAD", policy) if policy is not None else None
        if fmt == "json":
            doc = json.loads(report_json(report))
            if verdict is not None:
                doc["signature"] = {"trusted": verdict.trusted, "signer": verdict.signer, "message": verdict.message}
                doc["valid"] = report.valid and verdict.trusted
            click.echo(json.dumps(doc, indent=2))
        else:
            if show_resources:
                click.echo(resources_text(snapshot))
            click.echo(report_text(report))
            if verdict is not None:
                click.echo(f"signature: {verdict.message}")
    if report.internal_errors:
        raise CommandExit(EXIT_BUG)
    raise exit_code_of(report.valid and (verdict is None or verdict.trusted))
