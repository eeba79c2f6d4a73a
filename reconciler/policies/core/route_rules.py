"""The HTTP routes of one outbound: MeshHTTPRoute `to` entries merged as Kuma v2.14 merges them.

The `to` entries of every MeshHTTPRoute selecting the proxy whose targetRef matches the
destination are taken in the engine's order. Their `rules` are merged by `matches`: rules
with equal matches (from any route) merge their `default`s, the later one winning field by
field; rules with different matches add up. Each match becomes a route; routes are ordered
most specific first (Exact path, then longer prefixes, then longer regexes; with a method
before without; more headers, then more query parameters before fewer), and a catch-all
`/` route to the destination itself is added unless a rule already matches exactly `/`.

An HTTP outbound becomes a TCP proxy when a MeshTCPRoute `to` entry matches its destination
and no MeshHTTPRoute one does (`tcp_routed`, Kuma's getBackendRefs): with both, the
MeshHTTPRoute wins.

`route_conf` gives a route the confs of the policies aimed at a MeshHTTPRoute (top-level
`targetRef`, or `to[].targetRef`), as Kuma's legacy and resource rules do; every other route
takes its outbound's conf.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any

from reconciler.frozen import FrozenDict, freeze
from reconciler.mesh.model import Dataplane
from reconciler.policies.core.destination import refers_to_route, to_matches
from reconciler.policies.core.match import (
    Destination,
    PolicyIndex,
    _to_entries,
    matched_policies,
    outbound_entries,
    resource_rule_key,
    targets_route,
)
from reconciler.policies.core.merge import Conf, Entry, merge_confs, merged_conf

__all__ = ["HttpRoute", "http_routes", "route_conf", "tcp_backends", "tcp_routed", "CATCH_ALL"]

CATCH_ALL: Mapping[str, Any] = freeze({"path": {"type": "PathPrefix", "value": "/"}})


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """One Envoy route: a match, filters and weighted backends (empty: the destination itself)."""

    match: Mapping[str, Any]
    filters: tuple[Mapping[str, Any], ...]
    backend_refs: tuple[Mapping[str, Any], ...]
    origin: str
    """The MeshHTTPRoute whose rule produced it ("" for the default route)."""
    name: str
    key: str = ""
    """Its rule's `matches` (Kuma's matches hash; "" for the default route): rules with equal
    matches are one rule, and policies aimed at a route configure its rules by this key."""


def _key(matches: Any) -> str:
    return json.dumps(matches, sort_keys=True, default=list)


def _compare_path(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> int:
    if a is not None and b is None:
        return -1
    if a is None and b is not None:
        return 1
    if a is None or b is None:
        return 0
    rank = {"Exact": 0, "PathPrefix": 1, "RegularExpression": 2}
    ta, tb = a.get("type", "PathPrefix"), b.get("type", "PathPrefix")
    if ta == tb:
        return 0 if ta == "Exact" else (len(str(b.get("value", ""))) - len(str(a.get("value", ""))))
    return rank.get(ta, 3) - rank.get(tb, 3)


def compare_match(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """Kuma's CompareMatch: negative when `a` is more specific and must come first."""
    if c := _compare_path(a.get("path"), b.get("path")):
        return c
    if (a.get("method") is None) != (b.get("method") is None):
        return -1 if a.get("method") is not None else 1
    if c := len(b.get("headers") or ()) - len(a.get("headers") or ()):
        return c
    return len(b.get("queryParams") or ()) - len(a.get("queryParams") or ())


def http_routes(dp: Dataplane, dest: Destination, index: PolicyIndex) -> tuple[HttpRoute, ...]:
    """The routes of an outbound towards `dest` (just the catch-all when no route applies)."""
    merged: dict[str, tuple[Sequence[Any], list[Mapping[str, Any]], str]] = {}
    entries = [e for e in _to_entries("MeshHTTPRoute", dp, index) if to_matches(e[2].get("targetRef") or {}, dest)]
    if dest.kind != "service":
        # Real resources merge the routes' entries in resource-rule order (legacy: policy order).
        entries.sort(key=lambda e: resource_rule_key(e[0].resource, e[2].get("targetRef") or {}))
    for matched, _, entry in entries:
        for rule in entry.get("rules") or ():
            matches = rule.get("matches") or ()
            key = _key(matches)
            if key in merged:
                merged[key][1].append(rule.get("default") or {})
                merged[key] = (merged[key][0], merged[key][1], matched.resource.name)
            else:
                merged[key] = (matches, [rule.get("default") or {}], matched.resource.name)
    routes: list[HttpRoute] = []
    for key, (matches, defaults, origin) in merged.items():
        conf = merge_confs(defaults)
        for match in matches or (CATCH_ALL,):
            filters, refs = tuple(conf.get("filters") or ()), tuple(conf.get("backendRefs") or ())
            routes.append(HttpRoute(freeze(match), filters, refs, origin, origin, key))
    routes.sort(key=cmp_to_key(lambda x, y: compare_match(x.match, y.match)))
    if not any(dict(r.match) == dict(CATCH_ALL) for r in routes):
        routes.append(HttpRoute(CATCH_ALL, (), (), "", "default"))
    return tuple(_with_path(r) for r in routes)


def _with_path(route: HttpRoute) -> HttpRoute:
    if route.match.get("path") is not None:
        return route
    # Envoy needs exactly one path matcher: a match without one is a catch-all on the path.
    return HttpRoute(
        FrozenDict({**route.match, "path": CATCH_ALL["path"]}), route.filters, route.backend_refs, route.origin, route.name, route.key
    )


def tcp_backends(dp: Dataplane, dest: Destination, index: PolicyIndex) -> tuple[Mapping[str, Any], ...]:
    """The weighted backends of a TCP outbound from MeshTCPRoutes (empty: the destination)."""
    refs: tuple[Mapping[str, Any], ...] = ()
    for _, _, entry in _to_entries("MeshTCPRoute", dp, index):
        if not to_matches(entry.get("targetRef") or {}, dest):
            continue
        for rule in entry.get("rules") or ():
            refs = tuple((rule.get("default") or {}).get("backendRefs") or ())
    return refs


def _routed_by(kind: str, dp: Dataplane, dest: Destination, index: PolicyIndex) -> bool:
    return any(to_matches(e[2].get("targetRef") or {}, dest) for e in _to_entries(kind, dp, index))


def tcp_routed(dp: Dataplane, dest: Destination, index: PolicyIndex) -> bool:
    """Whether an HTTP outbound towards `dest` is a TCP proxy to MeshTCPRoute backends."""
    return _routed_by("MeshTCPRoute", dp, dest, index) and not _routed_by("MeshHTTPRoute", dp, dest, index)


def route_conf(kind: str, dp: Dataplane, dest: Destination, index: PolicyIndex, route: HttpRoute) -> Conf | None:
    """The conf of `kind` on one route of the outbound to `dest` when policies aimed at a
    MeshHTTPRoute give it one of its own (None: the route takes the outbound's conf).

    - `kuma.io/service` destinations (Kuma's legacy rules): a policy whose top-level targetRef
      is a MeshHTTPRoute adds every `to` default of its own (their targetRefs are not looked
      at) to each rule of that route whose `to` names this destination or the whole mesh; a
      route built from that rule (equal matches, from any route) merges them after the
      outbound's own entries, in policy order. `to[].targetRef` MeshHTTPRoute entries do
      nothing here: Kuma's legacy rules skip their whole policy.
    - real resources (Kuma's resource rules): the `to` entries naming the MeshHTTPRoute the
      route came from, merged with the `Mesh` entries in resource-rule order. Entries naming
      the MeshService itself do not reach such a route, and top-level MeshHTTPRoute
      policies do nothing (Kuma leaves them out of resource rules).
    """
    if dest.kind == "service":
        extra = _legacy_route_entries(kind, dp, dest, index, route.key)
        return merged_conf(outbound_entries(kind, dp, dest, index) + extra) if extra else None
    target = index.http_routes.get(route.origin) if route.origin else None
    if target is None:
        return None
    entries = []
    named = False
    for matched, i, entry in _to_entries(kind, dp, index):
        ref = entry.get("targetRef") or {}
        if refers_to_route(ref, target.name, target.labels):
            named = True
        elif ref.get("kind", "Mesh") != "Mesh":
            continue
        if entry.get("default") is not None:
            entries.append((resource_rule_key(matched.resource, ref), (matched.resource, f"/spec/to/{i}", entry["default"])))
    if not named:
        return None
    entries.sort(key=lambda e: e[0])
    return merged_conf([e[1] for e in entries])


def _legacy_route_entries(kind: str, dp: Dataplane, dest: Destination, index: PolicyIndex, key: str) -> list[Entry]:
    """Kuma's buildToListWithRoutes: the `to` defaults of policies aimed at a route, once per
    rule of that route (towards `dest`) whose matches are `key`."""
    out: list[Entry] = []
    if not key:
        return out
    for matched in matched_policies(kind, dp, index):
        if not matched.selection.whole_proxy or not targets_route(matched.resource):
            continue
        route = index.route_named(matched.resource.spec["targetRef"].get("name") or "")
        for to in (route.spec.get("to") or ()) if route is not None else ():
            ref = to.get("targetRef") or {}
            if ref.get("kind", "Mesh") not in ("Mesh", "MeshSubset") and ref.get("name") != dest.service:
                continue
            for rule in to.get("rules") or ():
                if _key(rule.get("matches") or ()) != key:
                    continue
                for i, entry in enumerate(matched.resource.spec.get("to") or ()):
                    if entry.get("default") is not None:
                        out.append((matched.resource, f"/spec/to/{i}", entry["default"]))
    return out
