"""The pure half of `reconciler plan`: two snapshots and the settings → a `PlanResult`.

Both sides are rendered through the one render path (reconciler.render) with one certificate
provider, then compared proxy by proxy: Envoy resources added, removed and changed (secrets
redacted), allowed clients per inbound, service pairs allowed. Reading the revisions and
running the real Envoy are the caller's (reconciler/commands/plan.py): the Envoy check comes in
as `PlanSettings.check`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.ca.authority import CaError
from reconciler.ca.provider import CertificateProvider
from reconciler.commands.envoy_check import EnvoyVerdict
from reconciler.commands.plan_result import PairChange, PlanResult, ProxyPlan, ReachChange, ResourceDelta
from reconciler.commands.reachability import InboundKey, inbound_clients
from reconciler.commands.resource_json import ResourceJson
from reconciler.diff import diff
from reconciler.mesh.model import MeshModel, build_mesh_model
from reconciler.model import Resource, Snapshot
from reconciler.policies.core.match import PolicyIndex
from reconciler.policies.meshproxypatch.shape import patches_missing_listeners
from reconciler.render import render
from reconciler.validate import Report
from reconciler.validate.bugs import describe_bug
from reconciler.views.proxy import ProxyView
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, SHORT_NAMES, ProxyResources, XdsResource
from reconciler.xds.static import static_bootstrap_for

__all__ = ["EnvoyCheck", "PlanSettings", "plan_snapshots", "resource_deltas"]

log = logging.getLogger(__name__)

DISPLAY_ORDER = (LISTENER, ROUTE, CLUSTER, ENDPOINT, SECRET)

EnvoyCheck = Callable[[Mapping[str, Mapping[str, Any]]], Mapping[str, EnvoyVerdict]]
"""Static bootstrap per node id → Envoy's verdict per node id."""


@dataclass(frozen=True, slots=True)
class PlanSettings:
    compact_outbounds: int | None = None
    """As the server's --compact-outbounds, so that proxies get the outbound shape they would."""
    check: EnvoyCheck | None = None
    """Validates the full config of each added or changed proxy; None: not checked."""


def plan_snapshots(
    base: Snapshot, head: Snapshot, report: Report, settings: PlanSettings = PlanSettings(), *, base_invalid: bool = False
) -> PlanResult:
    """The plan from BASE to HEAD, HEAD validated already (its `report`); with `base_invalid`
    BASE is compared as an empty configuration. Pure but for `settings.check`, which it calls
    once with the full config of every added or changed proxy."""
    base_rev, head_rev = base.revision, head.revision
    before_resources, after_resources = (() if base_invalid else tuple(base.resources)), tuple(head.resources)
    compact_outbounds = settings.compact_outbounds
    # One certificate provider for both sides: the same CA and the same proxy certificates,
    # so secrets differ only where identities or CAs do. BASE goes first, as a server that
    # served it would: a CA change in HEAD then keeps BASE's CA trusted, as it would live.
    certs = CertificateProvider()
    notes: list[str] = []
    try:
        before = _Side.of(before_resources, certs, compact_outbounds)
    except CaError as e:
        before = _Side.empty()
        notes.append(f"base: cannot issue certificates ({e}); compared against an empty configuration")
    except Exception as e:
        log.debug("internal error", exc_info=e)
        before = _Side.empty()
        notes.append(f"base: {describe_bug(e, 'building BASE')}; compared against an empty configuration")
    try:
        after = _Side.of(after_resources, certs, compact_outbounds)
    except CaError as e:
        return PlanResult(base_rev, head_rev, report, diff(before_resources, after_resources), errors=(f"cannot issue certificates: {e}",))
    except Exception as e:  # the server would reject HEAD with this message: say so, no traceback
        log.debug("internal error", exc_info=e)
        return PlanResult(base_rev, head_rev, report, diff(before_resources, after_resources), errors=(describe_bug(e, "building HEAD"),))
    # Resources are shared between proxies: their JSON and diffs are computed once for all.
    json_of = ResourceJson()
    inbounds = _inbounds_by_node(before, after)
    proxies = []
    for node_id in sorted(set(before.views) | set(after.views)):
        proxy = _proxy_plan(node_id, before, after, json_of, inbounds.get(node_id, ()))
        if proxy is not None:
            proxies.append(proxy)
    if settings.check is not None:
        proxies = _check_with_envoy(proxies, after, settings.check, json_of)
    notes += _shape_notes(after)
    pairs_before, pairs_after = before.pairs(), after.pairs()
    return PlanResult(
        base_rev,
        head_rev,
        report,
        diff(before_resources, after_resources),
        tuple(proxies),
        tuple(sorted(PairChange(*p) for p in pairs_before - pairs_after)),
        tuple(sorted(PairChange(*p) for p in pairs_after - pairs_before)),
        len(pairs_before),
        len(pairs_after),
        settings.check is not None,
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


def _proxy_plan(node_id: str, before: _Side, after: _Side, json_of: ResourceJson, inbounds: Iterable[InboundKey]) -> ProxyPlan | None:
    old, new = before.config.get(node_id), after.config.get(node_id)
    deltas = resource_deltas(old, new, json_of)
    shape = _shape_text(before.views.get(node_id), after.views.get(node_id))
    if old is None:
        return ProxyPlan(node_id, "added", deltas, shape=shape)
    if new is None:
        return ProxyPlan(node_id, "removed", deltas)
    reach = _reach_changes(inbounds, before.clients, after.clients)
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
    """MeshProxyPatches that name a per-outbound listener a compact proxy does not have, or that
    generation could not apply."""
    out = []
    for node_id in sorted(after.views):
        view = after.views[node_id]
        out += [p.render() for p in patches_missing_listeners(view.dataplane, view.shape, after.indexes[view.dataplane.mesh])]
        config = after.config.get(node_id)
        out += [f"{node_id}: {problem}" for problem in (config.problems if config is not None else ())]
    return out


def _inbounds_by_node(before: _Side, after: _Side) -> dict[str, list[InboundKey]]:
    """The inbounds both sides have, by proxy (found once, not once per proxy)."""
    out: dict[str, list[InboundKey]] = {}
    for key in before.clients.keys() & after.clients.keys():
        out.setdefault(key.node_id, []).append(key)
    return out


def _reach_changes(
    inbounds: Iterable[InboundKey], before: Mapping[InboundKey, frozenset[str]], after: Mapping[InboundKey, frozenset[str]]
) -> tuple[ReachChange, ...]:
    out = []
    for key in sorted(inbounds):
        lost, gained = before[key] - after[key], after[key] - before[key]
        if lost or gained:
            out.append(ReachChange(key, tuple(sorted(lost)), tuple(sorted(gained))))
    return tuple(out)


def _check_with_envoy(proxies: list[ProxyPlan], after: _Side, check: EnvoyCheck, json_of: ResourceJson) -> list[ProxyPlan]:
    configs = _Bootstraps([p.node_id for p in proxies if p.status != "removed"], after, json_of)
    verdicts = check(configs)
    return [ProxyPlan(p.node_id, p.status, p.resources, p.reach, verdicts.get(p.node_id), p.shape) for p in proxies]


class _Bootstraps(Mapping[str, Mapping[str, Any]]):
    """The static bootstrap of each proxy, built when the check asks for it: the check starts
    Envoy on the first ones while the next ones are built."""

    def __init__(self, node_ids: list[str], after: _Side, json_of: ResourceJson) -> None:
        self._ids, self._after, self._json_of = node_ids, after, json_of
        self._known = frozenset(node_ids)

    def __getitem__(self, node_id: str) -> Mapping[str, Any]:
        if node_id not in self._known:
            raise KeyError(node_id)
        return static_bootstrap_for(self._after.views[node_id], self._json_of.resources(self._after.config[node_id]))

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


# -- Envoy resource diff --------------------------------------------------------------------
def resource_deltas(
    old: ProxyResources | None, new: ProxyResources | None, json_of: ResourceJson | None = None
) -> tuple[ResourceDelta, ...]:
    """Envoy resources added, removed and changed between two configs of one proxy; `json_of`
    shares the resources' JSON with other calls."""
    json_of = json_of or ResourceJson()

    def document(r: XdsResource) -> tuple[dict[str, Any], bool]:
        return json_of.public(r), r.type_url == SECRET

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
            da, secret_a = document(ra) if ra is not None else (None, False)
            db, secret_b = document(rb) if rb is not None else (None, False)
            secret = secret_a or secret_b
            if da is None:
                out.append(ResourceDelta(short, name, "added", None, db, (), secret))
            elif db is None:
                out.append(ResourceDelta(short, name, "removed", da, None, (), secret))
            else:
                fields = () if secret or ra is None or rb is None else json_of.fields(ra, rb)
                out.append(ResourceDelta(short, name, "changed", da, db, fields, secret or not fields))
    return tuple(out)
