"""Whether one proxy's Envoy resources hold together: every name a resource refers to is served.

Envoy accepts a cluster whose EDS name is not served, a listener whose RDS name is not served,
a transport socket whose SDS secret is not served, a route to a cluster that does not exist;
and then it warms forever or answers 503. `problems` lists such dangling references:

- a cluster of type EDS names an EDS resource (`edsClusterConfig.serviceName`, else its name);
- a listener's HTTP connection manager names a route configuration over RDS (`rds`); inline
  route configurations (`routeConfig`) are checked like the served ones;
- transport sockets and SDS configs name secrets (`...SdsSecretConfig(s)`);
- routes (`cluster`, `weightedClusters`), TCP proxies, gRPC services (`envoyGrpc.clusterName`)
  and aggregate clusters name clusters; the bootstrap's static clusters (`ads_cluster`, see
  reconciler/dataplane/bootstrap.py) count as existing.

One dangling reference is Kuma's on purpose and accepted: a transparent proxy's
`outbound:passthrough:ipv4` (and `:ipv6`) listener names its same-named cluster even when the
Mesh turns passthrough off and the cluster is not generated; Envoy then closes the connections
no outbound claims, which is what passthrough off means (xds/generate/transparent.py).

The tests run it on every proxy they generate (tests/support.py `generate_checked`); the
server does not run it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.xds.resources import ProxyResources
from reconciler.xds_types import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, SHORT_NAMES

__all__ = ["BOOTSTRAP_CLUSTERS", "problems"]

BOOTSTRAP_CLUSTERS = frozenset({"ads_cluster"})
"""Clusters Envoy has from its bootstrap (reconciler/dataplane/bootstrap.py), not over xDS."""

_REFERRING_TYPES = (CLUSTER, LISTENER, ROUTE)

_PASSTHROUGH_OFF = frozenset(f"outbound:passthrough:ipv{family}" for family in (4, 6))
"""Listeners that may name their own missing cluster (see the module docstring)."""


def problems(resources: ProxyResources, *, static_clusters: frozenset[str] = BOOTSTRAP_CLUSTERS) -> list[str]:
    """Every reference from one resource to another that the proxy is not served, as one line each."""
    served = {t: set(resources.of(t)) for t in (CLUSTER, ENDPOINT, ROUTE, SECRET)}
    served[CLUSTER] |= static_clusters
    out: list[str] = []
    for type_url in _REFERRING_TYPES:
        for name, res in resources.of(type_url).items():
            doc = res.to_dict()
            refs = list(_references(doc))
            if type_url == CLUSTER:
                refs.extend(_eds_reference(name, doc))
            for target, ref_name, where in refs:
                if type_url == LISTENER and target == CLUSTER and name in _PASSTHROUGH_OFF and ref_name == name:
                    continue
                if ref_name not in served[target]:
                    out.append(f"{SHORT_NAMES[type_url]} {name!r}: {where} names {SHORT_NAMES[target]} {ref_name!r}, which is not served")
    return out


def _eds_reference(name: str, cluster: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    if cluster.get("type") == "EDS":
        service = (cluster.get("edsClusterConfig") or {}).get("serviceName") or name
        yield ENDPOINT, str(service), "edsClusterConfig"


def _references(doc: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(type URL, name, where) for each reference found anywhere in an Envoy JSON document."""
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            yield from _references(item, f"{path}[{i}]")
        return
    if not isinstance(doc, dict):
        return
    for key, value in doc.items():
        where = f"{path}.{key}" if path else key
        if key == "rds" and isinstance(value, dict) and "routeConfigName" in value:
            yield ROUTE, str(value["routeConfigName"]), where
        elif key.endswith("SdsSecretConfig") and isinstance(value, dict):
            yield SECRET, str(value.get("name", "")), where
        elif key.endswith("SdsSecretConfigs") and isinstance(value, list):
            for i, item in enumerate(value):
                yield SECRET, str(item.get("name", "")), f"{where}[{i}]"
        elif key == "cluster" and isinstance(value, str):
            yield CLUSTER, value, where  # RouteAction, TcpProxy
        elif key == "weightedClusters" and isinstance(value, dict):
            for i, item in enumerate(value.get("clusters") or ()):
                yield CLUSTER, str(item.get("name", "")), f"{where}.clusters[{i}]"
        elif key == "envoyGrpc" and isinstance(value, dict) and "clusterName" in value:
            yield CLUSTER, str(value["clusterName"]), where
        elif key == "clusterType" and isinstance(value, dict):
            for i, item in enumerate((value.get("typedConfig") or {}).get("clusters") or ()):
                yield CLUSTER, str(item), f"{where}.clusters[{i}]"
        if isinstance(value, dict | list):
            yield from _references(value, where)
