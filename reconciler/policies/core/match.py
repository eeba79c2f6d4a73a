"""The targetRef engine: which policies apply to a proxy, in which order, merged how.

Follows Kuma v2.14 (pkg/plugins/policies/core):

1. **Selection** (`selects`): a policy's top-level `targetRef` selects a dataplane and some of
   its inbounds — Mesh (optionally by `proxyTypes`), MeshSubset (tags of an inbound),
   Dataplane (by name, by labels, or all; `sectionName` picks one inbound), MeshService and
   MeshServiceSubset (the `kuma.io/service` tag, plus tags), MeshGateway (the gateway's
   proxies), MeshHTTPRoute (whatever that route's own targetRef selects).
2. **Order** (`policy_sort_key`): by top-level kind (Mesh < Dataplane < MeshSubset <
   MeshGateway < MeshService < MeshExternalService < MeshMultiZoneService <
   MeshServiceSubset < MeshHTTPRoute), a Dataplane selected by name over by labels and with a
   sectionName over without, origin (global < unknown < zone), role (system < producer <
   consumer < workload-owner), then name descending. Later entries are more specific and win;
   on a tie, the lexicographically smaller name is applied last and wins.
3. **Entries**: `to` entries for outbounds, `from` entries and `rules` for inbounds, and the
   top-level `default` for single-item policies. For a destination named by the
   `kuma.io/service` tag, matching `to` entries are merged in policy order (Kuma's legacy
   rules); for a real MeshService / MeshExternalService / MeshMultiZoneService, entries are
   ordered by policy attributes, then by their own targetRef kind (and sectionName), then by
   name (Kuma's resource rules). Which `to` refs name a destination: core/destination.py.
   Policies aimed at a MeshHTTPRoute (top level or in `to`) configure that route's rules
   only: core/route_rules.py `route_conf`.
4. **Merge** (`merge_confs`, core/merge.py): the `default`s are merged in that order as JSON merge patches:
   objects merge key by key, a later scalar or list replaces the earlier one — except fields
   named `append…`, whose lists concatenate.

`resolve(kind, proxy, target)` is the one function that answers "which conf applies to proxy P
for inbound/outbound X", with the contributing policies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.mesh.model import SERVICE_TAG, Dataplane, Inbound
from reconciler.model import Resource
from reconciler.policies.core import namespace
from reconciler.policies.core.destination import DISPLAY_NAME_LABEL, Destination
from reconciler.policies.core.destination import to_matches as _to_matches
from reconciler.policies.core.gateway_listeners import gateway_selection
from reconciler.policies.core.merge import Conf, Contribution, Entry, merge_confs, merged_conf

__all__ = [
    "KIND_ORDER",
    "Contribution",
    "Conf",
    "Destination",
    "PolicyIndex",
    "Selection",
    "selects",
    "matched_policies",
    "outbound_conf",
    "outbound_entries",
    "merged_conf",
    "resource_rule_key",
    "targets_route",
    "inbound_conf",
    "single_conf",
    "route_confs",
    "resolve",
]

KIND_ORDER = {
    "Mesh": 1,
    "Dataplane": 2,
    "MeshSubset": 3,
    "MeshGateway": 4,
    "MeshService": 5,
    "MeshExternalService": 6,
    "MeshMultiZoneService": 7,
    "MeshServiceSubset": 8,
    "MeshHTTPRoute": 9,
}
_ORIGIN_ORDER = {"global": 1, "": 2, "zone": 3}
_ROLE_ORDER = {"system": 1, "producer": 2, "consumer": 3, "workload-owner": 4}
ORIGIN_LABEL = "kuma.io/origin"
ROLE_LABEL = "kuma.io/policy-role"
ZONE_LABEL = "kuma.io/zone"


@dataclass(frozen=True, slots=True)
class Selection:
    """What of a dataplane a policy's top-level targetRef selects."""

    inbounds: frozenset[tuple[str, int]]
    """Selected inbound listeners (address, port)."""
    whole_proxy: bool
    """True when the proxy itself is selected (its outbounds are configured by `to`)."""


@dataclass(frozen=True, slots=True)
class MatchedPolicy:
    resource: Resource
    selection: Selection


@dataclass(frozen=True, slots=True)
class PolicyIndex:
    """Policies of one mesh by kind, and the MeshHTTPRoutes that targetRefs may name."""

    by_kind: Mapping[str, tuple[Resource, ...]] = field(default_factory=dict)
    http_routes: Mapping[str, Resource] = field(default_factory=dict)
    """MeshHTTPRoutes by stored name (`name.namespace` in Kubernetes form): a route's identity."""
    gateways: tuple[Resource, ...] = ()
    routes_shown: Mapping[str, Resource] = field(default_factory=dict)
    """MeshHTTPRoutes by display name: what a targetRef names (Kuma's IsReferenced)."""
    _matched: dict[tuple[str, int], tuple[MatchedPolicy, ...]] = field(default_factory=dict, compare=False, repr=False)
    """Memo of matched_policies for this index's lifetime (dataplanes outlive it)."""
    _views: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    """Memo of outbound views shared by alike proxies (reconciler.views.proxy)."""

    @classmethod
    def build(cls, policies: Iterable[Resource], gateways: Iterable[Resource] = ()) -> PolicyIndex:
        by_kind: dict[str, list[Resource]] = {}
        routes: dict[str, Resource] = {}
        shown: dict[str, Resource] = {}
        for p in policies:
            by_kind.setdefault(p.type, []).append(p)
            if p.type == "MeshHTTPRoute":
                routes[p.name] = p
                shown.setdefault(_label(p, DISPLAY_NAME_LABEL) or p.name, p)
        return cls({k: tuple(v) for k, v in by_kind.items()}, routes, tuple(sorted(gateways, key=lambda g: g.name)), shown)

    def route_named(self, name: str) -> Resource | None:
        """The MeshHTTPRoute a targetRef's `name` names: by display name, else by stored name."""
        return self.routes_shown.get(name) or self.http_routes.get(name)

    def gateway_of(self, dp: Dataplane) -> Resource | None:
        """The MeshGateway whose selectors match a builtin gateway dataplane's tags."""
        if not dp.gateway or dp.gateway.get("type") != "BUILTIN":
            return None
        tags = dp.gateway.get("tags") or {}
        for gw in self.gateways:
            for selector in gw.spec.get("selectors") or ():
                if _tags_match(selector.get("match") or {}, tags):
                    return gw
        return None

    def of(self, kind: str) -> tuple[Resource, ...]:
        return self.by_kind.get(kind, ())


# -- selection ------------------------------------------------------------------------------
def _proxy_type(dp: Dataplane) -> str:
    return "Gateway" if dp.gateway else "Sidecar"


def _tags_match(selector: Mapping[str, str], tags: Mapping[str, str]) -> bool:
    return all(tags.get(k) == v or (v == "*" and k in tags) for k, v in selector.items())


def _inbound_key(i: Inbound) -> tuple[str, int]:
    return (i.address, i.port)


def _by_tags(dp: Dataplane, selector: Mapping[str, str], index: PolicyIndex) -> Selection:
    inbounds = frozenset(_inbound_key(i) for i in dp.inbounds if _tags_match(selector, i.tags))
    listeners, gateway = gateway_selection(dp.address, dp.gateway, index.gateway_of(dp), selector)  # builtin: by listener tags
    return Selection(inbounds | listeners, bool(inbounds) or gateway)


_NOTHING = Selection(frozenset(), False)


def selects(policy: Resource, dp: Dataplane, index: PolicyIndex, _depth: int = 0) -> Selection:
    """What of `dp` the policy's top-level targetRef selects (nothing when not matched)."""
    if not namespace.dataplane_in_scope(policy.labels, dp.labels):
        return _NOTHING
    ref = policy.spec.get("targetRef") or {"kind": "Mesh"}
    kind = ref.get("kind", "Mesh")
    proxy_types = ref.get("proxyTypes") or ()
    if kind == "Mesh":
        if proxy_types and _proxy_type(dp) not in proxy_types:
            return _NOTHING
        return Selection(frozenset(_inbound_key(i) for i in dp.inbounds), True)
    if kind == "MeshSubset":
        if proxy_types and _proxy_type(dp) not in proxy_types:
            return _NOTHING
        return _by_tags(dp, ref.get("tags") or {}, index)
    if kind == "Dataplane":
        if dp.gateway and (dp.gateway.get("type") == "BUILTIN"):
            return _NOTHING
        name, labels = ref.get("name"), ref.get("labels")
        if name or ref.get("namespace") or labels is not None:
            # Kuma: by name (and namespace, the policy's own when omitted) or by labels.
            by_name = bool(name) and namespace.refers_to(policy.labels, ref, dp.name, dp.labels) and _same_zone(policy, dp)
            if not by_name and (labels is None or not all(dp.labels.get(k) == v for k, v in labels.items())):
                return _NOTHING
        section = ref.get("sectionName") or ""
        chosen = [i for i in dp.inbounds if not section or i.name == section or str(i.port) == section]
        return Selection(frozenset(_inbound_key(i) for i in chosen), True)
    if kind == "MeshService":
        return _by_tags(dp, {SERVICE_TAG: ref.get("name") or ""}, index)
    if kind == "MeshServiceSubset":
        return _by_tags(dp, {**(ref.get("tags") or {}), SERVICE_TAG: ref.get("name") or ""}, index)
    if kind == "MeshGateway":  # the listeners of that MeshGateway whose tags match
        gateway = index.gateway_of(dp)
        return _by_tags(dp, ref.get("tags") or {}, index) if gateway is not None and gateway.name == ref.get("name") else _NOTHING
    if kind == "MeshHTTPRoute" and _depth < 2:
        route = index.route_named(ref.get("name") or "")
        return selects(route, dp, index, _depth + 1) if route is not None else _NOTHING
    return _NOTHING


def _same_zone(policy: Resource, dp: Dataplane) -> bool:
    """Kuma's kri names a Dataplane in the policy's zone: a global or other zone's policy names
    no Dataplane here; one without zone label or global origin is this zone's own."""
    local = dp.labels.get(ZONE_LABEL) or ""
    zone = _label(policy, ZONE_LABEL) or ("" if _label(policy, ORIGIN_LABEL) == "global" else local)
    return zone == local


def _label(r: Resource, name: str) -> str:
    return str(r.labels.get(name) or "")


def policy_sort_key(policy: Resource) -> tuple[Any, ...]:
    """Kuma's SortByTargetRef: least specific first; on full ties the smaller name is last."""
    ref = policy.spec.get("targetRef") or {"kind": "Mesh"}
    kind = ref.get("kind", "Mesh")
    dataplane_rank = 0
    if kind == "Dataplane":
        # by name over by labels; with a sectionName over without
        dataplane_rank = (2 if ref.get("name") else 1 if ref.get("labels") is not None else 0) * 2 + (1 if ref.get("sectionName") else 0)
    gateway_tags = len(ref.get("tags") or {}) if kind == "MeshGateway" else 0
    display = _label(policy, DISPLAY_NAME_LABEL) or policy.name
    return (
        KIND_ORDER.get(kind, 0),
        dataplane_rank,
        _ORIGIN_ORDER.get(_label(policy, ORIGIN_LABEL), 2),
        gateway_tags,
        _ROLE_ORDER.get(_label(policy, ROLE_LABEL) or "system", 1),
        _Desc(display),
    )


@dataclass(frozen=True, slots=True, order=False)
class _Desc:
    """Sorts strings in descending order inside a tuple key."""

    value: str

    def __lt__(self, other: _Desc) -> bool:
        return self.value > other.value


def matched_policies(kind: str, dp: Dataplane, index: PolicyIndex) -> tuple[MatchedPolicy, ...]:
    """Policies of `kind` that select `dp`, least specific first."""
    memo_key = (kind, id(dp))
    cached = index._matched.get(memo_key)
    if cached is not None:
        return cached
    out = []
    for policy in index.of(kind):
        sel = selects(policy, dp, index)
        if sel.whole_proxy or sel.inbounds:
            out.append(MatchedPolicy(policy, sel))
    out.sort(key=lambda m: policy_sort_key(m.resource))
    result = tuple(out)
    index._matched[memo_key] = result
    return result


# -- outbound --------------------------------------------------------------------------------
def targets_route(policy: Resource) -> bool:
    """Whether the policy's top-level targetRef is a MeshHTTPRoute (Kuma's deprecated form)."""
    return (policy.spec.get("targetRef") or {}).get("kind") == "MeshHTTPRoute"


def _names_a_route(policy: Resource) -> bool:
    return any((e.get("targetRef") or {}).get("kind") == "MeshHTTPRoute" for e in policy.spec.get("to") or ())


def _to_entries(kind: str, dp: Dataplane, index: PolicyIndex) -> list[tuple[MatchedPolicy, int, Mapping[str, Any]]]:
    """The `to` entries of the policies that select the whole proxy, in policy order. A policy
    whose top-level targetRef is a MeshHTTPRoute only configures that route's rules
    (route_rules.route_conf): Kuma's BuildToRules keeps it away from the destinations."""
    out = []
    for m in matched_policies(kind, dp, index):
        if not m.selection.whole_proxy or targets_route(m.resource):
            continue
        for i, entry in enumerate(m.resource.spec.get("to") or ()):
            out.append((m, i, namespace.in_policy_namespace(m.resource.labels, entry)))
    return out


def resource_rule_key(policy: Resource, ref: Mapping[str, Any]) -> tuple[Any, ...]:
    """Kuma's order of `to` entries for real resources: policy attributes, then the entry's own
    kind (a MeshService with a sectionName after one without), then name."""
    k = policy_sort_key(policy)
    kind = ref.get("kind", "Mesh")
    return (k[:5], KIND_ORDER.get(kind, 0), 1 if kind == "MeshService" and ref.get("sectionName") else 0, k[5])


def outbound_entries(kind: str, dp: Dataplane, dest: Destination, index: PolicyIndex) -> list[Entry]:
    """The `to` entries of `kind` that configure traffic from `dp` to `dest`, in merge order."""
    entries = [e for e in _to_entries(kind, dp, index) if _to_matches(e[2].get("targetRef") or {}, dest)]
    if dest.kind == "service":
        # Kuma's legacy rules skip a policy naming a MeshHTTPRoute in `to` as a whole.
        entries = [e for e in entries if not _names_a_route(e[0].resource)]
    else:
        entries.sort(key=lambda e: resource_rule_key(e[0].resource, e[2].get("targetRef") or {}))
    return [(m.resource, f"/spec/to/{i}", e["default"]) for m, i, e in entries if e.get("default") is not None]


def outbound_conf(kind: str, dp: Dataplane, dest: Destination, index: PolicyIndex) -> Conf | None:
    """The merged `to` conf of `kind` for traffic from `dp` to `dest`."""
    return merged_conf(outbound_entries(kind, dp, dest, index))


def route_confs(kind: str, dp: Dataplane, dest: Destination, index: PolicyIndex) -> Mapping[str, Conf]:
    """Per MeshHTTPRoute name: the merged `to` conf of policies targeting that route (the
    gateway's routes; a sidecar's outbound routes use route_rules.route_conf)."""
    out: dict[str, Conf] = {}
    for m in matched_policies(kind, dp, index):
        ref = m.resource.spec.get("targetRef") or {}
        if ref.get("kind") != "MeshHTTPRoute":
            continue
        for i, entry in enumerate(m.resource.spec.get("to") or ()):
            entry = namespace.in_policy_namespace(m.resource.labels, entry)
            if _to_matches(entry.get("targetRef") or {}, dest) and entry.get("default") is not None:
                route = index.route_named(ref.get("name") or "")
                name = route.name if route is not None else str(ref.get("name"))  # keyed as the routes' origin
                prev = out.get(name)
                merged = merge_confs(([prev.value] if prev else []) + [entry["default"]])
                origins = (prev.origins if prev else ()) + (Contribution(m.resource.key, f"/spec/to/{i}"),)
                out[name] = Conf(merged, origins)
    return out


# -- inbound ---------------------------------------------------------------------------------
def inbound_conf(kind: str, dp: Dataplane, inbound: Inbound, index: PolicyIndex) -> Conf | None:
    """The merged conf of `kind` for all traffic into `inbound`.

    Counts `from` entries whose targetRef is the whole mesh (conf for every client) and
    `rules` entries without `matches`; client-specific entries are the business of the
    policies that need them (MeshTrafficPermission), via `matched_policies`.
    """
    key = _inbound_key(inbound)
    entries: list[tuple[Resource, str, Mapping[str, Any]]] = []
    for m in matched_policies(kind, dp, index):
        if key not in m.selection.inbounds:
            continue
        for i, entry in enumerate(m.resource.spec.get("from") or ()):
            if (entry.get("targetRef") or {}).get("kind", "Mesh") == "Mesh" and entry.get("default") is not None:
                entries.append((m.resource, f"/spec/from/{i}", entry["default"]))
        for i, rule in enumerate(m.resource.spec.get("rules") or ()):
            if not rule.get("matches") and rule.get("default") is not None:
                entries.append((m.resource, f"/spec/rules/{i}", rule["default"]))
    return merged_conf(entries)


def single_conf(kind: str, dp: Dataplane, index: PolicyIndex) -> Conf | None:
    """The merged top-level `default` (MeshTrace, MeshMetric, MeshProxyPatch, MeshPassthrough…)."""
    entries = [
        (m.resource, "/spec/default", m.resource.spec["default"])
        for m in matched_policies(kind, dp, index)
        if m.resource.spec.get("default") is not None
    ]
    return merged_conf(entries)


Target = Destination | Inbound | None


def resolve(kind: str, dp: Dataplane, target: Target, index: PolicyIndex) -> Conf | None:
    """Which conf of `kind` applies to proxy `dp` for an outbound destination, an inbound, or
    (target None) the proxy as a whole — merged, with the policies that contributed."""
    if isinstance(target, Destination):
        return outbound_conf(kind, dp, target, index)
    if isinstance(target, Inbound):
        return inbound_conf(kind, dp, target, index)
    return single_conf(kind, dp, index)
