"""`reconciler diff BASE HEAD`: what changed between two revisions, field by field."""

from __future__ import annotations

import json
from typing import Any

import click

from reconciler.commands.options import format_option, path_option, repo_option
from reconciler.commands.read import open_source, read_snapshot
from reconciler.diff import Diff, diff
from reconciler.errors import escape_control

__all__ = ["run_diff", "diff_text", "diff_json", "diff_command"]


def run_diff(repo: str, path: str | None, base: str, head: str) -> tuple[str | None, str | None, Diff]:
    source = open_source(repo, path)
    a = read_snapshot(repo, path, base, False, source)
    b = read_snapshot(repo, path, head, False, source)
    return a.revision, b.revision, diff(a.resources, b.resources)


def _value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str)


def diff_text(d: Diff) -> str:
    if d.empty:
        return "no changes"
    lines = []
    for r in d.added:
        lines.append(f"+ {r.key}" + (f"  ({r.origin.file}:{r.origin.line})" if r.origin else ""))
    for r in d.removed:
        lines.append(f"- {r.key}" + (f"  ({r.origin.file}:{r.origin.line})" if r.origin else ""))
    for c in d.changed:
        lines.append(f"~ {c.key}" + (f"  ({c.new.origin.file}:{c.new.origin.line})" if c.new.origin else ""))
        for f in c.fields:
            if f.op == "add":
                lines.append(f"    {f.pointer}: + {_value(f.new)}")
            elif f.op == "remove":
                lines.append(f"    {f.pointer}: - {_value(f.old)}")
            else:
                lines.append(f"    {f.pointer}: {_value(f.old)} → {_value(f.new)}")
    lines.append(f"{len(d.added)} added, {len(d.changed)} changed, {len(d.removed)} removed")
    # Keys, file names and values come from the repository: one line each, whatever they hold.
    return "\n".join(map(escape_control, lines))


def diff_json(base: str | None, head: str | None, d: Diff) -> str:
    return json.dumps({"base": base, "head": head, **d.to_json()}, indent=2, ensure_ascii=False, default=str)


@click.command("diff")
@repo_option("Repository (bare or with a work tree).")
@path_option()
@format_option
@click.argument("base")
@click.argument("head", default="HEAD")
def diff_command(repo: str, path: str, fmt: str, base: str, head: str) -> None:
    """Resources added, removed and changed (field by field) from BASE to HEAD."""
    a, b, d = run_diff(repo, path, base, head)
    click.echo(diff_json(a, b, d) if fmt == "json" else diff_text(d))
