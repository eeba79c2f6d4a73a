"""`reconciler plan --base A --head B`: a dry run of a pull request.

`run_plan` returns a `Plan`: the validation of HEAD, the resource diff, every proxy whose Envoy
config or whose set of allowed clients changes (with the Envoy resources added, removed and
changed, secrets redacted), the service pairs that gain or lose the right to talk, and what
the real Envoy said about each changed proxy's full config. `plan_text`, `plan_json` and
`plan_markdown` format it; the Markdown is made to be posted as a pull-request comment.

A plan is valid when HEAD validates and Envoy accepts every changed proxy's config.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import click
import pygit2

from reconciler.ca.authority import CaError
from reconciler.ca.provider import CertificateProvider
from reconciler.commands.envoy_check import EnvoyVerdict, validate_with_envoy
from reconciler.commands.errors import EXIT_USAGE, RepositoryError
from reconciler.commands.reachability import InboundKey, inbound_clients
from reconciler.commands.read import open_source, read_snapshot
from reconciler.commands.validate import bugs_as_one_line, report_text
from reconciler.dataplane.envoy_binary import EnvoyNotFound
from reconciler.diff import Diff, FieldChange, diff, diff_documents
from reconciler.errors import escape_control
from reconciler.mesh.model import MeshModel, build_mesh_model
from reconciler.mesh.proxy import ProxyView, policy_indexes, proxy_views
from reconciler.policies._meshproxypatch_shape import patches_missing_listeners
from reconciler.model import Resource, Snapshot
from reconciler.source.git import GitSource, SourceError
from reconciler.validate import Report, validate
from reconciler.validate.bugs import describe_bug
from reconciler.xds.generate import generate
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, REDACTED, ROUTE, SECRET, SHORT_NAMES, ProxyResources, XdsResource, redact
from reconciler.xds.static import static_bootstrap_for

__all__ = [
    "Plan",
    "ProxyPlan",
    "ResourceDelta",
    "ReachChange",
    "PairChange",
    "EnvoyUnavailable",
    "run_plan",
    "plan_snapshots",
    "resource_deltas",
    "redact",
    "plan_text",
    "plan_json",
    "plan_markdown",
    "MARKDOWN_MARKER",
    "REDACTED",
]

log = logging.getLogger(__name__)

DISPLAY_ORDER = (LISTENER, ROUTE, CLUSTER, ENDPOINT, SECRET)
MARKDOWN_MARKER = "<!-- mesh-reconciler plan -->"
"""First line of the Markdown output, so a bot can find and update its earlier comment."""
MARKDOWN_LIMIT = 60_000
"""GitHub refuses comments over 65,536 characters; details are cut to stay under."""
MARKDOWN_PROXY_LINES = 400

Op = Literal["added", "removed", "changed"]


class EnvoyUnavailable(click.ClickException):
    """No Envoy binary to validate with (exit 2: nothing was planned)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True, slots=True)
class ResourceDelta:
    """One Envoy resource of one proxy that differs between base and head (redacted JSON)."""

    type: str
    """Short xDS name: LDS, RDS, CDS, EDS or SDS."""
    name: str
    op: Op
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    fields: tuple[FieldChange, ...] = ()
    redacted: bool = False
    """The content is secret: only that it was added, removed or changed is shown."""


@dataclass(frozen=True, slots=True)
class ReachChange:
    """An inbound whose allowed clients (source services) changed."""

    inbound: InboundKey
    lost: tuple[str, ...]
    gained: tuple[str, ...]


@dataclass(frozen=True, slots=True, order=True)
class PairChange:
    mesh: str
    source: str
    destination: str


@dataclass(frozen=True, slots=True)
class ProxyPlan:
    node_id: str
    status: Op
    resources: tuple[ResourceDelta, ...] = ()
    reach: tuple[ReachChange, ...] = ()
    envoy: EnvoyVerdict | None = None
    shape: str = ""
    """The outbound shape when it is not Kuma's or when it changes ("kuma → compact")."""


@dataclass(frozen=True, slots=True)
class Plan:
    base: str | None
    head: str | None
    report: Report
    """Validation of HEAD; when it failed, nothing else was computed."""
    diff: Diff | None = None
    proxies: tuple[ProxyPlan, ...] = ()
    lost: tuple[PairChange, ...] = ()
    gained: tuple[PairChange, ...] = ()
    allowed_before: int = 0
    allowed_after: int = 0
    envoy_checked: bool = False
    base_invalid: bool = False
    """BASE did not validate: it was compared as an empty configuration."""
    notes: tuple[str, ...] = field(default=())
    errors: tuple[str, ...] = field(default=())
    """Why HEAD cannot be served although it validates (a mesh CA that cannot be used)."""

    @property
    def rejected_by_envoy(self) -> tuple[ProxyPlan, ...]:
        return tuple(p for p in self.proxies if p.envoy is not None and not p.envoy.ok)

    @property
    def valid(self) -> bool:
        return self.report.valid and not self.errors and not self.rejected_by_envoy


# -- computing ------------------------------------------------------------------------------
def run_plan(
    repo: str,
    path: str | None,
    base: str,
    head: str,
    *,
    envoy_check: bool = True,
    envoy: str | None = None,
    jobs: int | None = None,
    compact_outbounds: int | None = None,
) -> Plan:
    """Plan the change from `base` to `head` of the repository at `repo`; `compact_outbounds`
    as the server's --compact-outbounds, so that proxies get the outbound shape they would.

    A bug hit while reading or validating raises InternalBug (one line, exit 3); one hit while
    building HEAD is the plan's error, and one hit while building BASE a note.
    """
    source = open_source(repo, path)
    with bugs_as_one_line("reading and validating the revisions"):
        a = _read_base(source, base)
        b = read_snapshot(repo, path, head, False, source)
        report = validate(b)
        base_invalid = report.valid and not validate(a).valid
    if not report.valid:
        return Plan(a.revision, b.revision, report)
    return plan_snapshots(
        a.revision,
        () if base_invalid else a.resources,
        b.revision,
        b.resources,
        report,
        envoy_check=envoy_check,
        envoy=envoy,
        jobs=jobs,
        base_invalid=base_invalid,
        compact_outbounds=compact_outbounds,
    )


def _read_base(source: GitSource, base: str) -> Snapshot:
    """BASE's snapshot; empty when the configured path does not exist there yet."""
    try:
        commit = source.resolve(base)
        if source.path and _missing(commit.tree, source.path):
            return Snapshot(str(commit.id), (), (), 0)
        return source.snapshot_of(commit)
    except SourceError as e:
        raise RepositoryError(str(e)) from None


def _missing(tree: pygit2.Tree, path: str) -> bool:
    try:
        tree[path]
    except KeyError:
        return True
    return False


def plan_snapshots(
    base_rev: str | None,
    base: Iterable[Resource],
    head_rev: str | None,
    head: Iterable[Resource],
    report: Report,
    *,
    envoy_check: bool = True,
    envoy: str | None = None,
    jobs: int | None = None,
    base_invalid: bool = False,
    compact_outbounds: int | None = None,
) -> Plan:
    """The plan between two validated sets of resources (HEAD's `report` already computed)."""
    base, head = tuple(base), tuple(head)
    # One certificate provider for both sides: the same CA and the same proxy certificates,
    # so secrets differ only where identities or CAs do. BASE goes first, as a server that
    # served it would: a CA change in HEAD then keeps BASE's CA trusted, as it would live.
    certs = CertificateProvider()
    notes: list[str] = []
    try:
        before = _Side.of(base, certs, compact_outbounds)
    except CaError as e:
        before = _Side.empty()
        notes.append(f"base: cannot issue certificates ({e}); compared against an empty configuration")
    except Exception as e:
        log.debug("internal error", exc_info=e)
        before = _Side.empty()
        notes.append(f"base: {describe_bug(e, 'building BASE')}; compared against an empty configuration")
    try:
        after = _Side.of(head, certs, compact_outbounds)
    except CaError as e:
        return Plan(base_rev, head_rev, report, diff(base, head), errors=(f"cannot issue certificates: {e}",))
    except Exception as e:  # the server would reject HEAD with this message: say so, no traceback
        log.debug("internal error", exc_info=e)
        return Plan(base_rev, head_rev, report, diff(base, head), errors=(describe_bug(e, "building HEAD"),))
    proxies = []
    for node_id in sorted(set(before.views) | set(after.views)):
        proxy = _proxy_plan(node_id, before, after)
        if proxy is not None:
            proxies.append(proxy)
    if envoy_check:
        proxies = _check_with_envoy(proxies, after, envoy, jobs)
    notes += _shape_notes(after)
    pairs_before, pairs_after = before.pairs(), after.pairs()
    return Plan(
        base_rev,
        head_rev,
        report,
        diff(base, head),
        tuple(proxies),
        tuple(sorted(PairChange(*p) for p in pairs_before - pairs_after)),
        tuple(sorted(PairChange(*p) for p in pairs_after - pairs_before)),
        len(pairs_before),
        len(pairs_after),
        envoy_check,
        base_invalid,
        notes=tuple(notes),
    )


@dataclass(frozen=True, slots=True)
class _Side:
    """One revision as the data plane sees it: views, generated config, allowed clients."""

    model: MeshModel
    views: Mapping[str, ProxyView]
    config: Mapping[str, ProxyResources]
    clients: Mapping[InboundKey, frozenset[str]]

    @classmethod
    def of(cls, resources: tuple[Resource, ...], certs: CertificateProvider, compact_outbounds: int | None = None) -> _Side:
        """Raises CaError when a mesh's CA cannot be used."""
        model = build_mesh_model(resources)
        views = proxy_views(model, certs, compact_outbounds)
        config = {n: generate(v) for n, v in views.items()}
        return cls(model, views, config, inbound_clients(model, policy_indexes(model)))

    @classmethod
    def empty(cls) -> _Side:
        return cls(build_mesh_model(()), {}, {}, {})

    def pairs(self) -> set[tuple[str, str, str]]:
        out: set[tuple[str, str, str]] = set()
        for key, sources in self.clients.items():
            mesh = self.model.dataplanes[key.node_id].mesh
            out.update((mesh, source, key.service) for source in sources)
        return out


def _proxy_plan(node_id: str, before: _Side, after: _Side) -> ProxyPlan | None:
    old, new = before.config.get(node_id), after.config.get(node_id)
    deltas = resource_deltas(old, new)
    shape = _shape_text(before.views.get(node_id), after.views.get(node_id))
    if old is None:
        return ProxyPlan(node_id, "added", deltas, shape=shape)
    if new is None:
        return ProxyPlan(node_id, "removed", deltas)
    reach = _reach_changes(node_id, before.clients, after.clients)
    if not deltas and not reach:
        return None
    return ProxyPlan(node_id, "changed", deltas, reach, shape=shape)


def _shape_text(old: ProxyView | None, new: ProxyView | None) -> str:
    if new is None:
        return ""
    if old is not None and old.shape.shape != new.shape.shape:
        return f"outbound shape {old.shape.shape} → {new.shape.shape} ({new.shape.reason})"
    return f"compact outbound shape ({new.shape.reason})" if new.shape.shape == "compact" else ""


def _shape_notes(after: _Side) -> list[str]:
    """MeshProxyPatches that name a per-outbound listener a compact proxy does not have."""
    indexes = policy_indexes(after.model)
    out = []
    for node_id in sorted(after.views):
        view = after.views[node_id]
        out += [p.render() for p in patches_missing_listeners(view.dataplane, view.shape, indexes[view.dataplane.mesh])]
    return out


def _reach_changes(node_id: str, before: Mapping[InboundKey, frozenset[str]], after: Mapping[InboundKey, frozenset[str]]) -> tuple[ReachChange, ...]:
    out = []
    for key in sorted(k for k in before.keys() & after.keys() if k.node_id == node_id):
        lost, gained = before[key] - after[key], after[key] - before[key]
        if lost or gained:
            out.append(ReachChange(key, tuple(sorted(lost)), tuple(sorted(gained))))
    return tuple(out)


def _check_with_envoy(proxies: list[ProxyPlan], after: _Side, envoy: str | None, jobs: int | None) -> list[ProxyPlan]:
    configs = {p.node_id: static_bootstrap_for(after.views[p.node_id], after.config[p.node_id]) for p in proxies if p.status != "removed"}
    try:
        verdicts = validate_with_envoy(configs, envoy=envoy, jobs=jobs)
    except EnvoyNotFound as e:
        raise EnvoyUnavailable(f"{e}; or plan without it: --no-envoy-check") from None
    return [ProxyPlan(p.node_id, p.status, p.resources, p.reach, verdicts.get(p.node_id), p.shape) for p in proxies]


# -- Envoy resource diff --------------------------------------------------------------------
def _document(r: XdsResource) -> tuple[dict[str, Any], bool]:
    return r.public_dict(), r.type_url == SECRET


def resource_deltas(old: ProxyResources | None, new: ProxyResources | None) -> tuple[ResourceDelta, ...]:
    """Envoy resources added, removed and changed between two configs of one proxy."""
    types = list(DISPLAY_ORDER) + sorted({t for side in (old, new) if side for t in side.by_type} - set(DISPLAY_ORDER))
    out = []
    for type_url in types:
        a = old.of(type_url) if old is not None else {}
        b = new.of(type_url) if new is not None else {}
        short = SHORT_NAMES.get(type_url, type_url.rpartition(".")[2])
        for name in sorted(a.keys() | b.keys()):
            ra, rb = a.get(name), b.get(name)
            if ra is not None and rb is not None and ra == rb:
                continue
            da, secret_a = _document(ra) if ra is not None else (None, False)
            db, secret_b = _document(rb) if rb is not None else (None, False)
            secret = secret_a or secret_b
            if da is None:
                out.append(ResourceDelta(short, name, "added", None, db, (), secret))
            elif db is None:
                out.append(ResourceDelta(short, name, "removed", da, None, (), secret))
            else:
                fields = () if secret else tuple(diff_documents(da, db))
                out.append(ResourceDelta(short, name, "changed", da, db, fields, secret or not fields))
    return tuple(out)


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


def _outcome(plan: Plan) -> str:
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
        return f"valid: Envoy accepts the config of {'the' if checked == 1 else f'all {checked}'} changed prox{'y' if checked == 1 else 'ies'}"
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


def plan_text(plan: Plan) -> str:
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


def plan_json(plan: Plan) -> str:
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
                    {"inbound": {"address": c.inbound.address, "port": c.inbound.port, "service": c.inbound.service}, "lost": list(c.lost), "gained": list(c.gained)}
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
    diff_lines = list(difflib.unified_diff(old, new, fromfile=label if d.old is not None else "/dev/null", tofile=label if d.new is not None else "/dev/null", n=3, lineterm=""))
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
    out = ["<details open>" if rejected else "<details>", f"<summary><code>{p.node_id}</code> ({p.status}){icon}: {_md_escape(_proxy_summary(p))}</summary>", ""]
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


def plan_markdown(plan: Plan, *, limit: int = MARKDOWN_LIMIT) -> str:
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
        head += [f"<details><summary>{len(plan.report.warnings)} validation warning(s)</summary>", "", *_fenced("text", [p.render() for p in plan.report.warnings], 200), "", "</details>", ""]
    if lost or gained:
        head += ["#### Who may talk to whom", "", "| | source | destination | mesh |", "| --- | --- | --- | --- |"]
        head += [f"| ➖ no longer allowed | `{c.source}` | `{c.destination}` | `{c.mesh}` |" for c in plan.lost]
        head += [f"| ➕ newly allowed | `{c.source}` | `{c.destination}` | `{c.mesh}` |" for c in plan.gained]
        head.append("")
    if not plan.diff.empty:
        head += ["#### Resources", "", *_fenced("diff", [line.strip() if line.startswith("  ") and line[2] in "+-~" else line for line in _resource_diff_lines(plan.diff)], 300), ""]
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
    short += [f"- `{p.node_id}` ({p.status}): {_md_escape(_proxy_summary(p))}" + (f" — ❌ {_md_escape(p.envoy.message.splitlines()[0])}" if p.envoy and not p.envoy.ok and p.envoy.message else "") for p in plan.proxies]
    return (_joined(head + short) + "\n")[:limit]


def _envoy_summary(plan: Plan) -> str:
    if not plan.envoy_checked:
        return "skipped"
    checked = [p for p in plan.proxies if p.envoy is not None]
    rejected = plan.rejected_by_envoy
    if not checked:
        return "no changed proxy config to check"
    if rejected:
        return f"{len(rejected)} of {len(checked)} rejected"
    return f"{len(checked)} of {len(checked)} accepted"

