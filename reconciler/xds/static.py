"""One proxy's Envoy resources as a static Envoy bootstrap: everything an xDS server would send,
written into `static_resources` so that `envoy -c FILE` runs the proxy without a control plane.

Used by `reconcile --out` (files for static deployments and CI) and by `plan` (the config
handed to `envoy --mode validate`). The rewrite is generic over what `generate()` returns:

- listeners are copied, and every HTTP connection manager that takes its routes over RDS gets
  the RouteConfiguration of that name inlined as `routeConfig`;
- EDS clusters become STATIC clusters (STRICT_DNS when an endpoint is a hostname) with the
  ClusterLoadAssignment of their service name inlined as `loadAssignment`;
- SDS secrets become `static_resources.secrets`, and every SDS reference to one of them loses
  its `sdsConfig`, which makes Envoy look it up among the static secrets;
- resources served only to clients that ask for them by name (gRPC's API listeners) are left
  out: Envoy would reject them.

A reference to a route or secret that the proxy's resources do not contain is left as it was,
so Envoy reports it (the config is inconsistent, and `plan` should say so). The functions here
are pure: they take values and return JSON-compatible dicts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import yaml

from reconciler.views.proxy import ProxyView
from reconciler.xds.generate import generate
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, ProxyResources

__all__ = ["static_bootstrap", "static_bootstrap_for", "to_yaml", "HCM_TYPE"]

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

JSON = dict[str, Any]


def static_bootstrap(
    resources: ProxyResources,
    *,
    node_id: str,
    admin_port: int,
    admin_address: str = "127.0.0.1",
    cluster: str = "",
) -> JSON:
    """An Envoy bootstrap (camelCase JSON) carrying `resources` as static resources."""
    routes = {name: r.to_dict() for name, r in resources.of(ROUTE).items()}
    assignments = {name: r.to_dict() for name, r in resources.of(ENDPOINT).items()}
    secrets = {name: r.to_dict() for name, r in resources.of(SECRET).items()}

    listeners = [_inline_routes(r.to_dict(), routes) for r in resources.of(LISTENER).values() if not r.by_name_only]
    clusters = [_static_cluster(r.to_dict(), assignments) for r in resources.of(CLUSTER).values() if not r.by_name_only]
    listeners = [_inline_secrets(item, secrets) for item in listeners]
    clusters = [_inline_secrets(item, secrets) for item in clusters]

    static: JSON = {"listeners": listeners, "clusters": clusters}
    if secrets:
        static["secrets"] = list(secrets.values())
    return {
        "node": {"id": node_id, "cluster": cluster or node_id.partition(".")[2] or node_id},
        "admin": {"address": {"socketAddress": {"address": admin_address, "portValue": admin_port}}},
        "staticResources": static,
    }


def static_bootstrap_for(view: ProxyView, resources: ProxyResources | None = None) -> JSON:
    """The static bootstrap of one dataplane: its node id and admin port, its generated config."""
    dp = view.dataplane
    return static_bootstrap(
        resources if resources is not None else generate(view),
        node_id=dp.node_id,
        admin_port=dp.admin_port,
        cluster=next((i.service for i in dp.inbounds if i.service), dp.name),
    )


def to_yaml(config: Mapping[str, Any]) -> str:
    """YAML for `envoy -c`: keys in the order they were built, no anchors, no line folding."""

    text: str = yaml.dump(dict(config), Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)
    return text


class _NoAliasDumper(yaml.SafeDumper):
    """Repeated values are written out again: Envoy's YAML reader has no use for anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _walk(value: Any, visit: Any) -> Any:
    """Apply `visit` to every mapping in `value`, depth first (children before parents)."""
    if isinstance(value, dict):
        return visit({k: _walk(v, visit) for k, v in value.items()})
    if isinstance(value, list):
        return [_walk(v, visit) for v in value]
    return value


def _inline_routes(listener: JSON, routes: Mapping[str, JSON]) -> JSON:
    def visit(node: JSON) -> JSON:
        if node.get("@type") != HCM_TYPE or "rds" not in node:
            return node
        name = (node.get("rds") or {}).get("routeConfigName", "")
        route = routes.get(name)
        if route is None:
            return node
        out = {k: v for k, v in node.items() if k != "rds"}
        out["routeConfig"] = route  # shared, never changed: every later step copies what it changes
        return out

    return _walk(listener, visit)  # type: ignore[no-any-return]


def _static_cluster(cluster: JSON, assignments: Mapping[str, JSON]) -> JSON:
    if "edsClusterConfig" not in cluster:
        return cluster
    out = dict(cluster)
    eds = out.pop("edsClusterConfig") or {}
    name = eds.get("serviceName") or cluster.get("name", "")
    assignment = dict(assignments.get(name) or {"clusterName": name})  # only its top level changes
    assignment["clusterName"] = cluster.get("name", name)
    out["type"] = "STATIC" if all(_is_ip(a) for a in _endpoint_addresses(assignment)) else "STRICT_DNS"
    out["loadAssignment"] = assignment
    return out


def _endpoint_addresses(assignment: JSON) -> list[str]:
    out = []
    for locality in assignment.get("endpoints") or ():
        for lb in locality.get("lbEndpoints") or ():
            sock = (((lb.get("endpoint") or {}).get("address") or {}).get("socketAddress")) or {}
            if "address" in sock:
                out.append(str(sock["address"]))
    return out


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _inline_secrets(item: JSON, secrets: Mapping[str, JSON]) -> JSON:
    """SDS references to secrets this proxy has become references to static secrets."""
    if not secrets:
        return item

    def visit(node: JSON) -> JSON:
        if "sdsConfig" in node and node.get("name") in secrets:
            return {k: v for k, v in node.items() if k != "sdsConfig"}
        return node

    return _walk(item, visit)  # type: ignore[no-any-return]
