"""Kuma 2.14's per-proxy inspect views, by KRI (api/openapi/specs: DataplaneNetworkingLayout,
PoliciesList, InboundPoliciesList, RouteRules):

- `layout`: the dataplane's inbounds and outbounds, each with its KRI and the Envoy resource
  that serves it (`_layout`);
- `proxy_policies`: the proxy-wide confs (`_policies`);
- `inbound_policies`: per policy type, each entry configuring one inbound (`_inbounds/{kri}/_policies`);
- `outbound_policies`: per policy type, the conf of one outbound (`_outbounds/{kri}/_policies`);
- `outbound_routes`: the MeshHTTPRoute / MeshTCPRoute rules of one outbound (`_outbounds/{kri}/_routes`);
- `route_policies`: the confs of one MeshHTTPRoute on one outbound (`.../_routes/{kri}/_policies`).

All but `outbound_routes` are read off the InspectRules document (inspection/rules.py), so the
two views cannot disagree. Only real destinations (MeshService, MeshExternalService,
MeshMultiZoneService) have a KRI; `kuma.io/service` outbounds are not listed (Kuma's
Exclusive mode, where these endpoints live, has none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.frozen import thaw
from reconciler.inspection.kri import Kri, kri, parse_kri
from reconciler.inspection.meta import go_matches
from reconciler.inspection.rules import routes_to
from reconciler.mesh.model import Inbound
from reconciler.policies.core.match import Destination, PolicyIndex
from reconciler.policies.core.route_rules import http_routes, route_conf, tcp_backends
from reconciler.views.proxy import OutboundView, ProxyView, destination_of

__all__ = ["layout", "proxy_policies", "inbound_policies", "outbound_policies", "outbound_routes", "route_policies", "NoSuchListener"]

_ROUTE_KINDS = ("MeshHTTPRoute", "MeshTCPRoute")


class NoSuchListener(LookupError):
    """The KRI is well formed but names no inbound or outbound of this dataplane."""


def _meta_kri(meta: Mapping[str, Any], section: str = "") -> str:
    return kri(meta["type"], meta["mesh"], meta["name"], meta.get("labels") or {}, section)


def _section(inbound: Inbound) -> str:
    return inbound.name or str(inbound.port)


def _real(view: ProxyView) -> list[tuple[Destination, OutboundView]]:
    out: list[tuple[Destination, OutboundView]] = []
    for ov in view.outbounds:
        dest = destination_of(ov)
        if dest.kind != "service" and all(d != dest for d, _ in out):
            out.append((dest, ov))
    return out


def layout(view: ProxyView) -> dict[str, Any]:
    """Kuma's DataplaneNetworkingLayout; `proxyResourceName` is the Envoy listener (or the
    compact shape's filter chain) that serves each, by the name this control plane gives it."""
    dp = view.dataplane
    inbounds = [
        {
            "kri": kri("Dataplane", dp.mesh, dp.name, dp.labels, _section(i)),
            "port": i.port,
            "protocol": i.protocol,
            "proxyResourceName": f"inbound:{i.address}:{i.port}",
        }
        for i in dp.inbounds
    ]
    outbounds = [
        {
            "kri": kri(dest.kind, dp.mesh, dest.service, dest.labels, dest.port_name or str(dest.port)),
            "port": dest.port,
            "protocol": ov.protocol,
            "proxyResourceName": f"outbound:{ov.outbound.address}:{ov.outbound.port}",
        }
        for dest, ov in _real(view)
    ]
    return {
        "kri": kri("Dataplane", dp.mesh, dp.name, dp.labels),
        "labels": dict(dp.labels),
        "inbounds": inbounds,
        "outbounds": outbounds,
        "listeners": [],
    }


def proxy_policies(rules: Mapping[str, Any]) -> dict[str, Any]:
    """Kuma's PoliciesList of the proxy-wide confs."""
    return {
        "policies": [
            {"kind": r["type"], "conf": r["proxyRule"]["conf"], "origins": [{"kri": _meta_kri(o)} for o in r["proxyRule"]["origin"]]}
            for r in rules["rules"]
            if "proxyRule" in r
        ]
    }


def _inbound(view: ProxyView, wanted: Kri) -> Inbound:
    dp = view.dataplane
    for i in dp.inbounds:
        ours = wanted.type == "Dataplane" and wanted.mesh == dp.mesh and wanted.name == (dp.labels.get("kuma.io/display-name") or dp.name)
        if ours and wanted.section in (_section(i), str(i.port)):
            return i
    raise NoSuchListener(f"no inbound {wanted} on Dataplane {dp.mesh}/{dp.name}")


def inbound_policies(view: ProxyView, rules: Mapping[str, Any], inbound_kri: str) -> dict[str, Any]:
    """Kuma's InboundPoliciesList: per type, each entry configuring the inbound with its own conf
    (ValueError: not a KRI; NoSuchListener: no such inbound)."""
    inbound = _inbound(view, parse_kri(inbound_kri))
    out = []
    for r in rules["rules"]:
        for entry in r["inboundRules"]:
            if entry["inbound"]["port"] != inbound.port:
                continue
            own = [(rule["conf"][0], _meta_kri(o["resourceMeta"])) for rule in entry["rules"] for o in rule["origin"]]
            out.append({"kind": r["type"], "origins": [{"kri": k} for _, k in own], "rules": [{"conf": c, "kri": k} for c, k in own]})
    return {"policies": out}


def _outbound(view: ProxyView, wanted: Kri) -> tuple[Destination, OutboundView]:
    for dest, ov in _real(view):
        name = dest.labels.get("kuma.io/display-name") or dest.service
        if dest.kind == wanted.type and name == wanted.name and wanted.section in (dest.port_name, str(dest.port)):
            return dest, ov
    raise NoSuchListener(f"no outbound {wanted} on Dataplane {view.dataplane.mesh}/{view.dataplane.name}")


def outbound_policies(view: ProxyView, rules: Mapping[str, Any], outbound_kri: str) -> dict[str, Any]:
    """Kuma's PoliciesList of one outbound: per type, its merged conf and the policies it came from."""
    dest, _ = _outbound(view, parse_kri(outbound_kri))
    section = dest.port_name or (str(dest.port) if dest.port else "")
    out = []
    for r in rules["rules"]:
        if r["type"] in _ROUTE_KINDS:
            continue
        for rule in r["toResourceRules"]:
            meta = rule["resourceMeta"]
            if (meta["type"], meta["name"], rule.get("resourceSectionName", "")) == (dest.kind, dest.service, section):
                origins = [{"kri": _meta_kri(o["resourceMeta"])} for o in rule["origin"]]
                out.append({"kind": r["type"], "conf": rule["conf"], "origins": origins})
    return {"policies": out}


def outbound_routes(view: ProxyView, index: PolicyIndex, outbound_kri: str) -> dict[str, Any]:
    """Kuma's routes of one outbound: the MeshHTTPRoute rules (matches, conf, the route they came
    from) or the MeshTCPRoute backends, as the proxy is served them."""
    dest, ov = _outbound(view, parse_kri(outbound_kri))
    dp = view.dataplane
    routes: list[dict[str, Any]] = []
    if ov.tcp_split:
        refs = [{**thaw(ref), "weight": ref.get("weight", 1)} for ref in tcp_backends(dp, dest, index)]
        routed = routes_to("MeshTCPRoute", dp, dest, index)  # the last one's backends are served
        chosen = kri("MeshTCPRoute", dp.mesh, routed[-1][0].name, routed[-1][0].labels) if routed else ""
        routes.append(
            {
                "kind": "MeshTCPRoute",
                "origins": [{"kri": chosen}] if chosen else [],
                # As Kuma writes a TCP rule: no matches (null, not omitted), the route in `origins` only.
                "rules": [{"conf": {"backendRefs": refs}, "kri": "", "matches": None}],
            }
        )
    elif any(r.origin for r in ov.routes):
        seen: dict[str, dict[str, Any]] = {}
        for route in http_routes(dp, dest, index):
            if not route.key or route.key in seen:
                continue
            target = index.http_routes.get(route.origin)
            route_kri = kri("MeshHTTPRoute", dp.mesh, target.name, target.labels) if target is not None else ""
            conf: dict[str, Any] = {}
            if route.filters:
                conf["filters"] = thaw(route.filters)
            if route.backend_refs:
                conf["backendRefs"] = [{**thaw(ref), "weight": ref.get("weight", 1)} for ref in route.backend_refs]
            seen[route.key] = {"conf": conf, "kri": route_kri, "matches": go_matches(json.loads(route.key))}
        origins = list(dict.fromkeys(r["kri"] for r in seen.values() if r["kri"]))
        routes.append({"kind": "MeshHTTPRoute", "origins": [{"kri": k} for k in origins], "rules": list(seen.values())})
    return {"routes": routes}


def route_policies(view: ProxyView, index: PolicyIndex, rules: Mapping[str, Any], outbound_kri: str, route_kri: str) -> dict[str, Any]:
    """Kuma's PoliciesList of one MeshHTTPRoute on one outbound: the conf its rules are served
    with, per type: the policies aimed at the route merged with the outbound's entries, or the
    outbound's own conf where none is (`_outbounds/{kri}/_routes/{route kri}/_policies`)."""
    dest, ov = _outbound(view, parse_kri(outbound_kri))
    wanted = parse_kri(route_kri)
    dp = view.dataplane
    route = next(
        (
            r
            for r in http_routes(dp, dest, index)
            if r.key
            and (target := index.http_routes.get(r.origin)) is not None
            and wanted.type == "MeshHTTPRoute"
            and wanted.name == (target.labels.get("kuma.io/display-name") or target.name)
        ),
        None,
    )
    if route is None:
        raise NoSuchListener(f"no route {wanted} on outbound {outbound_kri} of Dataplane {dp.mesh}/{dp.name}")
    own = ov.route_confs.get(route.key) or {}
    outbound = {p["kind"]: p for p in outbound_policies(view, rules, outbound_kri)["policies"]}
    out = []
    for kind in [*outbound, *sorted(set(own) - set(outbound))]:
        if kind not in own:
            out.append(outbound[kind])
            continue
        conf = route_conf(kind, dp, dest, index, route)
        origins = [kri(c.policy.type, c.policy.mesh, c.policy.name, _labels(index, c.policy)) for c in conf.origins] if conf else []
        out.append({"kind": kind, "conf": [thaw(own[kind])], "origins": [{"kri": k} for k in dict.fromkeys(origins)]})
    return {"policies": out}


def _labels(index: PolicyIndex, key: Any) -> Mapping[str, str]:
    found = next((p for p in index.of(key.type) if p.key == key), None)
    return found.labels if found is not None else {}
