"""`reconciler validate`: one commit or work tree → a Report."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from reconciler.commands.read import read_snapshot
from reconciler.errors import escape_control
from reconciler.model import Snapshot
from reconciler.validate import Report, validate

__all__ = ["run_validate", "report_json", "report_text", "resources_text"]


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
