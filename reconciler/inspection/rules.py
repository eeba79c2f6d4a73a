"""Kuma's InspectRules of one dataplane (`GET /meshes/{mesh}/dataplanes/{name}/_rules`,
`reconciler inspect dataplane`): per policy type, the proxy rule, the rules of each outbound
(`toRules` for `kuma.io/service` destinations, `toResourceRules` for real resources), the rules
of each inbound (`fromRules`, `inboundRules`), each with its merged conf and the policies it
came from, and the MeshHTTPRoute rules' matches by hash (`httpMatches`).

It is a view of what serving applies: the proxy's view is rendered by the one render path
(reconciler/render.py) and every conf comes from the same engine functions the view is built
with (policies/core/match.py and route_rules.py), per outbound and inbound the proxy really
has. Kuma lists subsets of tags instead (rules that may match no outbound, negated matchers);
docs/api.md says where the two differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from reconciler.frozen import thaw
from reconciler.inspection.meta import (
    MATCHES_HASH_KEY,
    destination_meta,
    entry_default,
    go_matches,
    hash_matches,
    matchers,
    origin_metas,
    resource_meta,
    resource_origins,
    service_matcher,
)
from reconciler.mesh.model import SERVICE_TAG, Dataplane, Inbound, MeshModel
from reconciler.model import Resource
from reconciler.policies.core import namespace
from reconciler.policies.core.destination import to_matches
from reconciler.policies.core.match import Destination, PolicyIndex, inbound_conf, matched_policies, outbound_conf, single_conf
from reconciler.policies.core.merge import Contribution, merge_confs
from reconciler.policies.core.route_rules import http_routes, route_conf, tcp_backends
from reconciler.policies.meshproxypatch.shape import patches_missing_listeners
from reconciler.policies.plugins import plugins
from reconciler.policies.registry import PLUGIN_ORDER
from reconciler.render import render
from reconciler.types import ResourceKey
from reconciler.views.proxy import OutboundView, ProxyView, destination_of

__all__ = ["inspect_rules", "gateway_rules", "proxy_view_of", "rules_of_view", "routes_to", "UnknownResource", "MTLS_WARNING"]

MTLS_WARNING = "Mesh is not Mtls enabled this policy will have no effect"
"""Kuma's warning on MeshTrafficPermission rules of a mesh without mTLS."""


class UnknownResource(LookupError):
    """No such mesh or dataplane in the model (the API answers 404)."""

    def __init__(self, type: str, mesh: str, name: str) -> None:
        self.type, self.mesh, self.name = type, mesh, name
        super().__init__(f"no {type} {mesh + '/' if type != 'Mesh' else ''}{name}")


def proxy_view_of(model: MeshModel, mesh: str, name: str, *, compact_outbounds: int | None = None) -> tuple[ProxyView, PolicyIndex]:
    """The proxy view of dataplane `mesh`/`name` through the one render path, and its mesh's
    policy index (UnknownResource when there is no such mesh or dataplane)."""
    if mesh not in model.meshes:
        raise UnknownResource("Mesh", "", mesh)
    node = f"{mesh}.{name}"
    if node not in model.dataplanes:
        raise UnknownResource("Dataplane", mesh, name)
    rendering = render(model, None, compact_outbounds, only=(node,), generate_config=False)
    return rendering.views[node], rendering.indexes[mesh]


def inspect_rules(model: MeshModel, mesh: str, name: str, *, compact_outbounds: int | None = None) -> dict[str, Any]:
    """Kuma's InspectRules JSON of dataplane `mesh`/`name` (UnknownResource when there is none).
    `compact_outbounds`: serve's --compact-outbounds, which decides the outbound shape."""
    return rules_of_view(*proxy_view_of(model, mesh, name, compact_outbounds=compact_outbounds))


def rules_of_view(view: ProxyView, index: PolicyIndex) -> dict[str, Any]:
    """The InspectRules document of an already rendered proxy view."""
    resources = {p.key: p for group in index.by_kind.values() for p in group}
    dp = view.dataplane
    http_matches: dict[str, list[dict[str, Any]]] = {}
    rules = []
    for kind in PLUGIN_ORDER:
        if kind == "MeshHTTPRoute":
            rule = _http_route_rule(view, index, resources, http_matches)
        elif kind == "MeshTCPRoute":
            rule = _tcp_route_rule(view, index, resources)
        else:
            rule = _policy_rule(kind, view, index, resources)
        if rule is not None:
            rules.append(rule)
    return {
        "resource": {"type": "Dataplane", "mesh": dp.mesh, "name": dp.name, "labels": dict(dp.labels)},
        "rules": rules,
        "httpMatches": [{"hash": h, "match": m} for h, m in http_matches.items()],
    }


def _destinations(view: ProxyView) -> Iterator[tuple[Destination, OutboundView]]:
    """Each destination of the proxy's outbounds once (two outbounds may reach one service)."""
    seen: set[tuple[str, str, int]] = set()
    for ov in view.outbounds:
        dest = destination_of(ov)
        key = (dest.kind, dest.service, dest.port)
        if key not in seen:
            seen.add(key)
            yield dest, ov


def _section(dest: Destination) -> dict[str, str]:
    section = dest.port_name or (str(dest.port) if dest.port else "")
    return {"resourceSectionName": section} if section else {}


def _shown(value: Any) -> Any:
    """A conf as Kuma shows it: without the engine's own bookkeeping keys (`_proxyTags`)."""
    out = thaw(value)
    return {k: v for k, v in out.items() if not str(k).startswith("_")} if isinstance(out, dict) else out


def _empty(kind: str) -> dict[str, Any]:
    return {"type": kind, "toRules": [], "toResourceRules": [], "fromRules": [], "inboundRules": [], "warnings": []}


def _is_empty(rule: Mapping[str, Any]) -> bool:
    return "proxyRule" not in rule and not any(rule[k] for k in ("toRules", "toResourceRules", "fromRules", "inboundRules", "warnings"))


def _policy_rule(kind: str, view: ProxyView, index: PolicyIndex, resources: Mapping[ResourceKey, Resource]) -> dict[str, Any] | None:
    dp = view.dataplane
    out = _empty(kind)
    proxy = single_conf(kind, dp, index)
    if proxy is not None:
        out["proxyRule"] = {"conf": _shown(proxy.value), "origin": origin_metas(proxy.origins, resources)}
    if kind not in {p.kind for p in plugins() if p.proxy_wide}:  # a proxy-wide conf is its proxyRule
        for dest, ov in _destinations(view):
            _to_rules(kind, dp, dest, ov, index, resources, out)
        _mesh_wide_to_rules(kind, dp, index, resources, out)
        for inbound in dp.inbounds:
            _inbound_rules(kind, dp, inbound, index, resources, out)
    if kind == "MeshTrafficPermission" and view.tls is None and matched_policies(kind, dp, index):
        out["warnings"].append(MTLS_WARNING)
    if kind == "MeshProxyPatch":
        out["warnings"] += [p.render() for p in patches_missing_listeners(dp, view.shape, index)]
    return None if _is_empty(out) else out


def _to_rules(
    kind: str,
    dp: Dataplane,
    dest: Destination,
    ov: OutboundView,
    index: PolicyIndex,
    resources: Mapping[ResourceKey, Resource],
    out: dict[str, Any],
) -> None:
    legacy = dest.kind == "service"
    conf = outbound_conf(kind, dp, dest, index)
    # What the proxy is served, when `to` entries gave it (MeshTLS derives its outbound conf
    # from the destination's inbound one: no `to` rule in Kuma either).
    value = ov.confs.get(kind) if conf is not None else None
    if conf is not None and value is not None:
        origins = conf.origins
        if legacy:
            out["toRules"].append(
                {"matchers": service_matcher(dest.service), "conf": _shown(value), "origin": origin_metas(origins, resources)}
            )
        else:
            out["toResourceRules"].append(
                {
                    "resourceMeta": destination_meta(dp.mesh, dest),
                    **_section(dest),
                    "conf": [_shown(value)],
                    "origin": resource_origins(origins, resources),
                }
            )
    # Policies aimed at a MeshHTTPRoute give its rules confs of their own.
    routes = {r.key: r for r in http_routes(dp, dest, index)} if ov.route_confs else {}
    for key, confs in ov.route_confs.items():
        route = routes.get(key)
        if kind not in confs or route is None:
            continue
        own = route_conf(kind, dp, dest, index, route)
        origins = own.origins if own is not None else ()
        if legacy:
            hashed = [{"key": MATCHES_HASH_KEY, "value": hash_matches(json.loads(key)), "not": False}]
            out["toRules"].append(
                {
                    "matchers": hashed + service_matcher(dest.service),
                    "conf": _shown(confs[kind]),
                    "origin": origin_metas(origins, resources),
                }
            )
        elif (target := index.http_routes.get(route.origin)) is not None:
            out["toResourceRules"].append(
                {"resourceMeta": resource_meta(target), "conf": [_shown(confs[kind])], "origin": resource_origins(origins, resources)}
            )


def _mesh_wide_to_rules(
    kind: str, dp: Dataplane, index: PolicyIndex, resources: Mapping[ResourceKey, Resource], out: dict[str, Any]
) -> None:
    """The `to` entries aimed at the whole mesh: the conf of any destination no entry names, last
    in `toRules` (no matcher) and keyed by the Mesh in `toResourceRules`, as Kuma lists them. For
    a builtin gateway, whose routes' destinations are not outbounds, it is all there is."""
    conf = outbound_conf(kind, dp, Destination(""), index)  # a destination only `Mesh` entries cover
    if conf is None:
        return
    out["toRules"].append({"matchers": [], "conf": _shown(conf.value), "origin": origin_metas(conf.origins, resources)})
    mesh = {"type": "Mesh", "mesh": "", "name": dp.mesh, "labels": {}}
    out["toResourceRules"].append(
        {"resourceMeta": mesh, "resourceSectionName": "", "conf": [_shown(conf.value)], "origin": resource_origins(conf.origins, resources)}
    )


def gateway_rules(model: MeshModel, mesh: str, name: str, *, compact_outbounds: int | None = None) -> dict[str, Any]:
    """Kuma's `/meshes/{mesh}/meshgateways/{name}/_rules`: the rules of a builtin gateway proxy
    that the MeshGateway's first selector would match (UnknownResource: no such gateway;
    ValueError: it has no selector), as Kuma computes them for a Dataplane it makes up."""
    if mesh not in model.meshes:
        raise UnknownResource("Mesh", "", mesh)
    gateway = next((g for g in model.gateways if g.mesh == mesh and g.name == name), None)
    if gateway is None:
        raise UnknownResource("MeshGateway", mesh, name)
    selectors = gateway.spec.get("selectors") or ()
    if not selectors:
        raise ValueError("no selectors on MeshGateway this is not supported")
    tags = {str(k): str(v) for k, v in (selectors[0].get("match") or {}).items()}
    made_up = Dataplane(mesh, name, "127.0.0.1", "", (), (), gateway={"type": "BUILTIN", "tags": tags}, labels=gateway.labels)
    with_it = replace(model, dataplanes={**model.dataplanes, made_up.node_id: made_up})
    doc = rules_of_view(*proxy_view_of(with_it, mesh, name, compact_outbounds=compact_outbounds))
    return {**doc, "resource": resource_meta(gateway)}


def _ref_tags(ref: Mapping[str, Any]) -> dict[str, str]:
    """The tag subset a `from` entry's targetRef names (empty: every client)."""
    kind = ref.get("kind", "Mesh")
    tags = {str(k): str(v) for k, v in (ref.get("tags") or {}).items()}
    if kind in ("MeshService", "MeshServiceSubset"):
        tags[SERVICE_TAG] = str(ref.get("name") or "")
    return tags


def _inbound_json(inbound: Inbound) -> dict[str, Any]:
    return {**({"name": inbound.name} if inbound.name else {}), "tags": dict(inbound.tags), "port": inbound.port}


def _inbound_rules(
    kind: str, dp: Dataplane, inbound: Inbound, index: PolicyIndex, resources: Mapping[ResourceKey, Resource], out: dict[str, Any]
) -> None:
    merged = inbound_conf(kind, dp, inbound, index)
    key = (inbound.address, inbound.port)
    # Client-specific `from` entries: one rule per subset, over the entries for every client.
    subsets: dict[str, list[tuple[Resource, int, Mapping[str, Any]]]] = {}
    tags_of: dict[str, dict[str, str]] = {}
    for m in matched_policies(kind, dp, index):
        if key not in m.selection.inbounds:
            continue
        for i, entry in enumerate(m.resource.spec.get("from") or ()):
            tags = _ref_tags(entry.get("targetRef") or {})
            if tags and entry.get("default") is not None:
                name = json.dumps(tags, sort_keys=True)
                tags_of[name] = tags
                subsets.setdefault(name, []).append((m.resource, i, entry["default"]))
    rules = []
    for name, entries in subsets.items():
        base = list(merged.origins) if merged is not None else []
        mine = [Contribution(r.key, f"/spec/from/{i}") for r, i, _ in entries]
        value = merge_confs(([merged.value] if merged is not None else []) + [d for _, _, d in entries])
        rules.append({"matchers": matchers(tags_of[name]), "conf": _shown(value), "origin": origin_metas(base + mine, resources)})
    if merged is not None:
        rules.append({"matchers": [], "conf": _shown(merged.value), "origin": origin_metas(merged.origins, resources)})
        # Kuma's inbound rules: each contributing entry with its own conf, in merge order.
        own = [{"conf": [_shown(entry_default(c, resources))], "origin": resource_origins((c,), resources)} for c in merged.origins]
        out["inboundRules"].append({"inbound": _inbound_json(inbound), "rules": own})
    if rules:
        out["fromRules"].append({"inbound": _inbound_json(inbound), "rules": rules})


def routes_to(kind: str, dp: Dataplane, dest: Destination, index: PolicyIndex) -> list[tuple[Resource, int]]:
    """The route policies (and their `to` entry) that route traffic from `dp` to `dest`."""
    out = []
    for m in matched_policies(kind, dp, index):
        if not m.selection.whole_proxy:
            continue
        for i, entry in enumerate(m.resource.spec.get("to") or ()):
            entry = namespace.in_policy_namespace(m.resource.labels, entry)
            if to_matches(entry.get("targetRef") or {}, dest):
                out.append((m.resource, i))
    return out


def _route_origins(legacy: bool, routed: list[tuple[Resource, int]], resources: Mapping[ResourceKey, Resource]) -> list[dict[str, Any]]:
    contributions = [Contribution(r.key, f"/spec/to/{i}") for r, i in routed]
    return origin_metas(contributions, resources) if legacy else resource_origins(contributions, resources)


def _with_weights(refs: Any) -> list[dict[str, Any]]:
    """backendRefs as Kuma shows them merged: `weight` defaults to 1."""
    return [{**thaw(ref), "weight": ref.get("weight", 1)} for ref in refs]


def _add_route_rule(out: dict[str, Any], dp: Dataplane, dest: Destination, conf: dict[str, Any], origins: list[dict[str, Any]]) -> None:
    if dest.kind == "service":
        out["toRules"].append({"matchers": service_matcher(dest.service), "conf": conf, "origin": origins})
    else:
        out["toResourceRules"].append(
            {"resourceMeta": destination_meta(dp.mesh, dest), **_section(dest), "conf": [conf], "origin": origins}
        )


def _http_route_rule(
    view: ProxyView, index: PolicyIndex, resources: Mapping[ResourceKey, Resource], http_matches: dict[str, list[dict[str, Any]]]
) -> dict[str, Any] | None:
    dp = view.dataplane
    out = _empty("MeshHTTPRoute")
    for dest, ov in _destinations(view):
        if not ov.routes or not any(r.origin for r in ov.routes):
            continue
        rules: dict[str, dict[str, Any]] = {}
        for route in http_routes(dp, dest, index):
            if not route.key or route.key in rules:
                continue
            matches = go_matches(json.loads(route.key))
            default: dict[str, Any] = {}
            if route.filters:
                default["filters"] = thaw(route.filters)
            if route.backend_refs:
                default["backendRefs"] = _with_weights(route.backend_refs)
            rules[route.key] = {"matches": matches, "default": default}
            http_matches[hash_matches(matches)] = matches
        if rules:
            routed = routes_to("MeshHTTPRoute", dp, dest, index)
            _add_route_rule(out, dp, dest, {"rules": list(rules.values())}, _route_origins(dest.kind == "service", routed, resources))
    return None if _is_empty(out) else out


def _tcp_route_rule(view: ProxyView, index: PolicyIndex, resources: Mapping[ResourceKey, Resource]) -> dict[str, Any] | None:
    dp = view.dataplane
    out = _empty("MeshTCPRoute")
    for dest, ov in _destinations(view):
        if not ov.tcp_split:  # not routed by a MeshTCPRoute as served (a MeshHTTPRoute wins)
            continue
        conf = {"rules": [{"default": {"backendRefs": _with_weights(tcp_backends(dp, dest, index))}}]}
        routed = routes_to("MeshTCPRoute", dp, dest, index)
        _add_route_rule(out, dp, dest, conf, _route_origins(dest.kind == "service", routed, resources))
    return None if _is_empty(out) else out
