"""The HTTP routes of one outbound: MeshHTTPRoute `to` entries merged as Kuma v2.14 merges them.

The `to` entries of every MeshHTTPRoute selecting the proxy whose targetRef matches the
destination are taken in the engine's order. Their `rules` are merged by `matches`: rules
with equal matches (from any route) merge their `default`s, the later one winning field by
field; rules with different matches add up. Each match becomes a route; routes are ordered
most specific first (Exact path, then longer prefixes, then longer regexes; with a method
before without; more headers, then more query parameters before fewer), and a catch-all
`/` route to the destination itself is added unless a rule already matches exactly `/`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any

from reconciler.frozen import FrozenDict, freeze
from reconciler.mesh.model import Dataplane
from reconciler.policies.core.match import Destination, PolicyIndex, _to_entries, _to_matches
from reconciler.policies.core.merge import merge_confs

__all__ = ["HttpRoute", "http_routes", "tcp_backends", "CATCH_ALL"]

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
    for matched, _, entry in _to_entries("MeshHTTPRoute", dp, index):
        if not _to_matches(entry.get("targetRef") or {}, dest):
            continue
        for rule in entry.get("rules") or ():
            matches = rule.get("matches") or ()
            key = _key(matches)
            if key in merged:
                merged[key][1].append(rule.get("default") or {})
                merged[key] = (merged[key][0], merged[key][1], matched.resource.name)
            else:
                merged[key] = (matches, [rule.get("default") or {}], matched.resource.name)
    routes: list[HttpRoute] = []
    for matches, defaults, origin in merged.values():
        conf = merge_confs(defaults)
        for match in matches or (CATCH_ALL,):
            routes.append(HttpRoute(freeze(match), tuple(conf.get("filters") or ()), tuple(conf.get("backendRefs") or ()), origin, origin))
    routes.sort(key=cmp_to_key(lambda x, y: compare_match(x.match, y.match)))
    if not any(dict(r.match) == dict(CATCH_ALL) for r in routes):
        routes.append(HttpRoute(CATCH_ALL, (), (), "", "default"))
    return tuple(_with_path(r) for r in routes)


def _with_path(route: HttpRoute) -> HttpRoute:
    if route.match.get("path") is not None:
        return route
    # Envoy needs exactly one path matcher: a match without one is a catch-all on the path.
    return HttpRoute(FrozenDict({**route.match, "path": CATCH_ALL["path"]}), route.filters, route.backend_refs, route.origin, route.name)


def tcp_backends(dp: Dataplane, dest: Destination, index: PolicyIndex) -> tuple[Mapping[str, Any], ...]:
    """The weighted backends of a TCP outbound from MeshTCPRoutes (empty: the destination)."""
    refs: tuple[Mapping[str, Any], ...] = ()
    for _, _, entry in _to_entries("MeshTCPRoute", dp, index):
        if not _to_matches(entry.get("targetRef") or {}, dest):
            continue
        for rule in entry.get("rules") or ():
            refs = tuple((rule.get("default") or {}).get("backendRefs") or ())
    return refs
