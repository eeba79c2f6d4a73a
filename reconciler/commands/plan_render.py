"""How a `PlanResult` (reconciler/commands/plan_result.py) reads: text for a terminal, JSON for tools,
Markdown for a pull-request comment."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from reconciler.commands.plan_result import PlanResult, ProxyPlan, ReachChange, ResourceDelta
from reconciler.commands.validate import report_text
from reconciler.diff import Diff, FieldChange
from reconciler.errors import escape_control

__all__ = ["plan_text", "plan_json", "plan_markdown", "MARKDOWN_MARKER"]

MARKDOWN_MARKER = "<!-- mesh-reconciler plan -->"
"""First line of the Markdown output, so a bot can find and update its earlier comment."""
MARKDOWN_LIMIT = 60_000
"""GitHub refuses comments over 65,536 characters; details are cut to stay under."""
MARKDOWN_PROXY_LINES = 400


# -- formatting: shared ---------------------------------------------------------------------
def _joined(lines: list[str]) -> str:
    """The output, one element per line: names, keys and values from the repository, and Envoy's
    words about them, cannot start a line of their own or drive the reader's terminal."""
    return "\n".join(map(escape_control, lines))


def _short(rev: str | None) -> str:
    return rev[:12] if rev else "work tree"


def _value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str)


def _field_line(f: FieldChange) -> str:
    if f.op == "add":
        return f"{f.pointer}: + {_value(f.new)}"
    if f.op == "remove":
        return f"{f.pointer}: - {_value(f.old)}"
    return f"{f.pointer}: {_value(f.old)} → {_value(f.new)}"


def _reach_line(c: ReachChange) -> str:
    where = f"inbound {c.inbound.address}:{c.inbound.port} ({c.inbound.service})"
    parts = []
    if c.lost:
        parts.append("no longer accepts " + ", ".join(c.lost))
    if c.gained:
        parts.append("now accepts " + ", ".join(c.gained))
    return f"{where} " + "; ".join(parts)


def _resource_line(d: ResourceDelta) -> str:
    sign = {"added": "+", "removed": "-", "changed": "~"}[d.op]
    return f"{sign} {d.type} {d.name}" + ("  (content redacted)" if d.redacted and d.type == "SDS" else "")


def _resource_summary(d: Diff | None) -> str:
    if d is None:
        return ""
    return f"{len(d.added)} added, {len(d.changed)} changed, {len(d.removed)} removed"


def _proxy_summary(p: ProxyPlan) -> str:
    counts = {op: sum(1 for d in p.resources if d.op == op) for op in ("added", "changed", "removed")}
    parts = [f"{n} {op}" for op, n in counts.items() if n]
    text = f"Envoy resources: {', '.join(parts)}" if parts else "Envoy config unchanged"
    if p.reach:
        text += "; allowed clients changed"
    if p.shape:
        text += f"; {p.shape}"
    return text


def _envoy_line(p: ProxyPlan) -> str:
    if p.envoy is None:
        return ""
    return "Envoy accepts the config" if p.envoy.ok else f"Envoy rejects the config: {p.envoy.message}"


def _outcome(plan: PlanResult) -> str:
    if not plan.report.valid:
        return "invalid: the configuration does not validate"
    if plan.errors:
        return "invalid: " + "; ".join(plan.errors)
    rejected = plan.rejected_by_envoy
    if rejected:
        return f"invalid: Envoy rejects the config of {len(rejected)} prox{'y' if len(rejected) == 1 else 'ies'} ({', '.join(p.node_id for p in rejected)})"
    checked = sum(1 for p in plan.proxies if p.envoy is not None)
    if plan.envoy_checked:
        if not checked:
            return "valid: no proxy config changes"
        return (
            f"valid: Envoy accepts the config of {'the' if checked == 1 else f'all {checked}'} changed prox{'y' if checked == 1 else 'ies'}"
        )
    return "valid (Envoy check skipped)"


# -- formatting: text -----------------------------------------------------------------------
def _resource_diff_lines(d: Diff) -> list[str]:
    lines = []
    for r in d.added:
        lines.append(f"  + {r.key}" + (f"  ({r.origin.file}:{r.origin.line})" if r.origin else ""))
    for r in d.removed:
        lines.append(f"  - {r.key}" + (f"  ({r.origin.file}:{r.origin.line})" if r.origin else ""))
    for c in d.changed:
        lines.append(f"  ~ {c.key}" + (f"  ({c.new.origin.file}:{c.new.origin.line})" if c.new.origin else ""))
        lines += [f"      {_field_line(f)}" for f in c.fields]
    return lines


def plan_text(plan: PlanResult) -> str:
    lines = [f"plan {_short(plan.base)} → {_short(plan.head)}", *report_text(plan.report).split("\n")]
    if not plan.report.valid:
        return _joined(lines)
    if plan.base_invalid:
        lines.append(f"note: base {_short(plan.base)} does not validate; compared against an empty configuration")
    lines += [f"note: {n}" for n in plan.notes]
    if plan.errors:
        lines += [f"error: {e}" for e in plan.errors]
        lines.append(_outcome(plan))
        return _joined(lines)
    assert plan.diff is not None
    lines.append("")
    lines.append(f"resources: {_resource_summary(plan.diff)}" if not plan.diff.empty else "resources: no changes")
    lines += _resource_diff_lines(plan.diff)
    lines.append("")
    lines.append(f"proxies: {len(plan.proxies)} affected")
    for p in plan.proxies:
        lines.append(f"  {dict(added='+', removed='-', changed='~')[p.status]} {p.node_id} ({p.status}): {_proxy_summary(p)}")
        for c in p.reach:
            lines.append(f"      {_reach_line(c)}")
        for d in p.resources:
            lines.append(f"      {_resource_line(d)}")
            if d.op == "changed" and not d.redacted:
                lines += [f"          {_field_line(f)}" for f in d.fields]
        if p.envoy is not None:
            lines += f"      {_envoy_line(p)}".split("\n")
    lines.append("")
    lines.append(f"service pairs allowed: {plan.allowed_before} before, {plan.allowed_after} after")
    for pair in plan.lost:
        lines.append(f"  - {pair.source} → {pair.destination}  (mesh {pair.mesh})")
    for pair in plan.gained:
        lines.append(f"  + {pair.source} → {pair.destination}  (mesh {pair.mesh})")
    lines.append("")
    lines.append(_outcome(plan))
    return _joined(lines)


# -- formatting: JSON -----------------------------------------------------------------------
def _delta_json(d: ResourceDelta) -> dict[str, Any]:
    out: dict[str, Any] = {"type": d.type, "name": d.name, "op": d.op, "redacted": d.redacted}
    if d.old is not None:
        out["old"] = d.old
    if d.new is not None:
        out["new"] = d.new
    if d.op == "changed":
        out["fields"] = [f.to_json() for f in d.fields]
    return out


def plan_json(plan: PlanResult) -> str:
    doc: dict[str, Any] = {
        "base": plan.base,
        "head": plan.head,
        "valid": plan.valid,
        "validation": {
            "valid": plan.report.valid,
            "errors": [p.to_json() for p in plan.report.errors],
            "warnings": [p.to_json() for p in plan.report.warnings],
        },
    }
    if plan.report.valid and plan.diff is not None:
        doc["errors"] = list(plan.errors)
        doc["notes"] = list(plan.notes)
        doc["baseInvalid"] = plan.base_invalid
        doc["resources"] = plan.diff.to_json()
        doc["proxies"] = [
            {
                "node": p.node_id,
                "status": p.status,
                "resources": [_delta_json(d) for d in p.resources],
                "allowedClients": [
                    {
                        "inbound": {"address": c.inbound.address, "port": c.inbound.port, "service": c.inbound.service},
                        "lost": list(c.lost),
                        "gained": list(c.gained),
                    }
                    for c in p.reach
                ],
                "envoy": None if p.envoy is None else {"ok": p.envoy.ok, "message": p.envoy.message},
                "outboundShape": p.shape,
            }
            for p in plan.proxies
        ]
        doc["servicePairs"] = {
            "allowedBefore": plan.allowed_before,
            "allowedAfter": plan.allowed_after,
            "lost": [{"mesh": c.mesh, "source": c.source, "destination": c.destination} for c in plan.lost],
            "gained": [{"mesh": c.mesh, "source": c.source, "destination": c.destination} for c in plan.gained],
        }
        doc["envoyChecked"] = plan.envoy_checked
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str)


# -- formatting: Markdown -------------------------------------------------------------------
def _json_lines(doc: Mapping[str, Any] | None) -> list[str]:
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str).splitlines() if doc is not None else []


def _unified(d: ResourceDelta) -> list[str]:
    label = f"{d.type} {d.name}"
    if d.redacted and d.type == "SDS":
        sign = {"added": "+", "removed": "-", "changed": "!"}[d.op]
        return [f"{sign} {label}  (secret {d.op}: content redacted)"]
    old = _json_lines(d.old)
    new = _json_lines(d.new)
    diff_lines = list(
        difflib.unified_diff(
            old,
            new,
            fromfile=label if d.old is not None else "/dev/null",
            tofile=label if d.new is not None else "/dev/null",
            n=3,
            lineterm="",
        )
    )
    return diff_lines or [f"  {label}: only redacted fields changed"]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _fenced(lang: str, lines: list[str], limit: int) -> list[str]:
    shown = lines[:limit]
    out = [f"```{lang}", *[line.replace("```", "`\u200b``") for line in shown], "```"]
    if len(lines) > limit:
        out.append(f"_{len(lines) - limit} more lines: run `reconciler plan` locally for the full diff._")
    return out


def _md_proxy(p: ProxyPlan, limit: int) -> list[str]:
    icon = "" if p.envoy is None else (" ✅" if p.envoy.ok else " ❌")
    rejected = p.envoy is not None and not p.envoy.ok
    out = [
        "<details open>" if rejected else "<details>",
        f"<summary><code>{p.node_id}</code> ({p.status}){icon}: {_md_escape(_proxy_summary(p))}</summary>",
        "",
    ]
    if rejected and p.envoy is not None:
        out += ["**Envoy rejects this config:**", *_fenced("text", p.envoy.message.splitlines(), limit), ""]
    if p.reach:
        out += [f"- {_md_escape(_reach_line(c))}" for c in p.reach]
        out.append("")
    diff_lines: list[str] = []
    for d in p.resources:
        diff_lines += _unified(d)
    if diff_lines:
        out += _fenced("diff", diff_lines, limit)
    out += ["", "</details>", ""]
    return out


def plan_markdown(plan: PlanResult, *, limit: int = MARKDOWN_LIMIT) -> str:
    ok = plan.valid
    head = [MARKDOWN_MARKER, f"### {'✅' if ok else '❌'} mesh-reconciler plan: {_md_escape(_outcome(plan))}", ""]
    head.append(f"`{_short(plan.base)}` → `{_short(plan.head)}`")
    head.append("")
    if not plan.report.valid:
        head += ["**The configuration does not validate:**", "", *_fenced("text", report_text(plan.report).splitlines(), 500)]
        return _joined(head) + "\n"
    assert plan.diff is not None
    lost, gained = len(plan.lost), len(plan.gained)
    head += [
        "| | |",
        "| --- | --- |",
        f"| Resources | {_resource_summary(plan.diff) if not plan.diff.empty else 'no changes'} |",
        f"| Proxies affected | {len(plan.proxies)} |",
        f"| Service pairs allowed | {plan.allowed_before} → {plan.allowed_after} ({lost} lost, {gained} gained) |",
        f"| Envoy validation | {_md_escape(_envoy_summary(plan))} |",
        "",
    ]
    if plan.errors:
        head += ["**HEAD cannot be served:**", "", *_fenced("text", list(plan.errors), 50)]
        return _joined(head) + "\n"
    if plan.base_invalid:
        head += [f"> **Note:** base `{_short(plan.base)}` does not validate; compared against an empty configuration.", ""]
    head += [f"> **Note:** {_md_escape(n)}" for n in plan.notes] + ([""] if plan.notes else [])
    if plan.report.warnings:
        head += [
            f"<details><summary>{len(plan.report.warnings)} validation warning(s)</summary>",
            "",
            *_fenced("text", [p.render() for p in plan.report.warnings], 200),
            "",
            "</details>",
            "",
        ]
    if lost or gained:
        head += ["#### Who may talk to whom", "", "| | source | destination | mesh |", "| --- | --- | --- | --- |"]
        head += [f"| ➖ no longer allowed | `{c.source}` | `{c.destination}` | `{c.mesh}` |" for c in plan.lost]
        head += [f"| ➕ newly allowed | `{c.source}` | `{c.destination}` | `{c.mesh}` |" for c in plan.gained]
        head.append("")
    if not plan.diff.empty:
        head += [
            "#### Resources",
            "",
            *_fenced(
                "diff",
                [line.strip() if line.startswith("  ") and line[2] in "+-~" else line for line in _resource_diff_lines(plan.diff)],
                300,
            ),
            "",
        ]
    body: list[str] = []
    if plan.proxies:
        body += ["#### Proxies", ""]
        for p in plan.proxies:
            body += _md_proxy(p, MARKDOWN_PROXY_LINES)
    text = _joined(head + body) + "\n"
    if len(text) <= limit:
        return text
    # Too long for a comment: keep the summary, list the proxies without their diffs.
    short = ["#### Proxies", "", "_Per-proxy diffs left out: the comment would be too long; run `reconciler plan` locally._", ""]
    short += [
        f"- `{p.node_id}` ({p.status}): {_md_escape(_proxy_summary(p))}"
        + (f" — ❌ {_md_escape(p.envoy.message.splitlines()[0])}" if p.envoy and not p.envoy.ok and p.envoy.message else "")
        for p in plan.proxies
    ]
    return (_joined(head + short) + "\n")[:limit]


def _envoy_summary(plan: PlanResult) -> str:
    if not plan.envoy_checked:
        return "skipped"
    checked = [p for p in plan.proxies if p.envoy is not None]
    rejected = plan.rejected_by_envoy
    if not checked:
        return "no changed proxy config to check"
    if rejected:
        return f"{len(rejected)} of {len(checked)} rejected"
    return f"{len(checked)} of {len(checked)} accepted"
