"""`reconciler plan --base A --head B`: a dry run of a pull request.

`run_plan` reads the two revisions and `plan_snapshots` computes from them a `PlanResult`
(reconciler/commands/plan_result.py): the validation of HEAD, the resource diff, every proxy
whose Envoy config or whose set of allowed clients changes (with the Envoy resources added,
removed and changed, secrets redacted), the service pairs that gain or lose the right to talk,
and what the real Envoy said about each changed proxy's full config. `plan_text`, `plan_json`
and `plan_markdown` (reconciler/commands/plan_render.py) format it; the Markdown is made to be
posted as a pull-request comment.

A plan is valid when HEAD validates and Envoy accepts every changed proxy's config.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from reconciler.ca.authority import CaError
from reconciler.ca.provider import CertificateProvider
from reconciler.commands.envoy_check import validate_with_envoy
from reconciler.commands.errors import EXIT_USAGE, RepositoryError, exit_code_of
from reconciler.commands.options import compact_outbounds_option, path_option, repo_option
from reconciler.commands.plan_result import PairChange, Plan, PlanResult, ProxyPlan, ReachChange, ResourceDelta
from reconciler.commands.reachability import InboundKey, inbound_clients
from reconciler.commands.read import open_source, read_snapshot
from reconciler.commands.validate import bugs_as_one_line
from reconciler.dataplane.envoy_binary import EnvoyNotFound
from reconciler.diff import diff, diff_documents
from reconciler.mesh.model import MeshModel, build_mesh_model
from reconciler.mesh.proxy import ProxyView
from reconciler.model import Resource, Snapshot
from reconciler.policies._meshproxypatch_shape import patches_missing_listeners
from reconciler.policies.match import PolicyIndex
from reconciler.render import render
from reconciler.source.git import GitSource, SourceError
from reconciler.source.revisions import has_path
from reconciler.validate import Report, validate
from reconciler.validate.bugs import describe_bug
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, REDACTED, ROUTE, SECRET, SHORT_NAMES, ProxyResources, XdsResource, redact
from reconciler.xds.static import static_bootstrap_for

__all__ = [
    "Plan",
    "PlanResult",
    "ProxyPlan",
    "ResourceDelta",
    "ReachChange",
    "PairChange",
    "EnvoyUnavailable",
    "run_plan",
    "plan_snapshots",
    "resource_deltas",
    "redact",
    "REDACTED",
    "plan_command",
]

log = logging.getLogger(__name__)

DISPLAY_ORDER = (LISTENER, ROUTE, CLUSTER, ENDPOINT, SECRET)


class EnvoyUnavailable(click.ClickException):
    """No Envoy binary to validate with (exit 2: nothing was planned)."""

    exit_code = EXIT_USAGE


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
) -> PlanResult:
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
        return PlanResult(a.revision, b.revision, report)
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
        if source.path and not has_path(commit, source.path):
            return Snapshot(str(commit.id), (), (), 0)
        return source.snapshot_of(commit)
    except SourceError as e:
        raise RepositoryError(str(e)) from None


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
) -> PlanResult:
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
        return PlanResult(base_rev, head_rev, report, diff(base, head), errors=(f"cannot issue certificates: {e}",))
    except Exception as e:  # the server would reject HEAD with this message: say so, no traceback
        log.debug("internal error", exc_info=e)
        return PlanResult(base_rev, head_rev, report, diff(base, head), errors=(describe_bug(e, "building HEAD"),))
    proxies = []
    for node_id in sorted(set(before.views) | set(after.views)):
        proxy = _proxy_plan(node_id, before, after)
        if proxy is not None:
            proxies.append(proxy)
    if envoy_check:
        proxies = _check_with_envoy(proxies, after, envoy, jobs)
    notes += _shape_notes(after)
    pairs_before, pairs_after = before.pairs(), after.pairs()
    return PlanResult(
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
    indexes: Mapping[str, PolicyIndex]
    """Each mesh's policies, indexed once for the clients and the MeshProxyPatch check."""

    @classmethod
    def of(cls, resources: tuple[Resource, ...], certs: CertificateProvider, compact_outbounds: int | None = None) -> _Side:
        """Raises CaError when a mesh's CA cannot be used."""
        model = build_mesh_model(resources)
        rendering = render(model, certs, compact_outbounds)
        indexes = rendering.indexes
        return cls(model, rendering.views, rendering.resources, inbound_clients(model, indexes), indexes)

    @classmethod
    def empty(cls) -> _Side:
        return cls(build_mesh_model(()), {}, {}, {}, {})

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
    out = []
    for node_id in sorted(after.views):
        view = after.views[node_id]
        out += [p.render() for p in patches_missing_listeners(view.dataplane, view.shape, after.indexes[view.dataplane.mesh])]
    return out


def _reach_changes(
    node_id: str, before: Mapping[InboundKey, frozenset[str]], after: Mapping[InboundKey, frozenset[str]]
) -> tuple[ReachChange, ...]:
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


@click.command("plan")
@repo_option("Repository (bare or with a work tree).")
@path_option()
@click.option("--base", required=True, help="Revision the change starts from (the pull request's base).")
@click.option("--head", default="HEAD", show_default=True, help="Revision to plan (the pull request's head or merge commit).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="markdown is made to be posted as a pull-request comment.",
)
@click.option(
    "--envoy-check/--no-envoy-check",
    default=True,
    show_default=True,
    help="Validate each changed proxy's full config with the real Envoy (--mode validate).",
)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Envoy validations run in parallel (default: CPUs, at most 8).")
@compact_outbounds_option
def plan_command(
    repo: str, path: str, base: str, head: str, fmt: str, envoy_check: bool, jobs: int | None, compact_outbounds: int | None
) -> None:
    """Dry run of a change from BASE to HEAD: resources, proxies, Envoy config, who may talk to whom.

    Exit 0 when HEAD is valid and Envoy accepts every changed proxy's config, 1 otherwise
    (the reasons are printed), 2 when a revision cannot be read or Envoy cannot be found.
    """
    from reconciler.commands.plan_render import plan_json, plan_markdown, plan_text

    result = run_plan(repo, path, base, head, envoy_check=envoy_check, jobs=jobs, compact_outbounds=compact_outbounds)
    show = {"json": plan_json, "markdown": plan_markdown}.get(fmt, plan_text)
    click.echo(show(result))
    raise exit_code_of(result.valid)
