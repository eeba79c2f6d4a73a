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

from reconciler.commands.read import read_snapshot
from reconciler.errors import escape_control
from reconciler.model import Snapshot
from reconciler.validate import Report, validate
from reconciler.validate.bugs import describe_bug

__all__ = ["run_validate", "report_json", "report_text", "resources_text", "InternalBug", "EXIT_BUG", "bugs_as_one_line"]

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
    except click.ClickException:
        raise
    except Exception as e:
        log.debug("internal error", exc_info=e)
        raise InternalBug(describe_bug(e, doing)) from None


def run_validate(repo: str, path: str | None, rev: str | None, worktree: bool) -> tuple[Snapshot, Report]:
    snapshot = read_snapshot(repo, path, rev, worktree)
    return snapshot, validate(snapshot)


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
