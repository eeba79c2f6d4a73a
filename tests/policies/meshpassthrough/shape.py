"""The passthrough listeners in a short form, and back.

kuma_plugin_cases.yaml states the listeners Kuma's plugin tests expect in this form: per
filter chain its name, its filter chain match (Envoy's JSON), and either the tcp_proxy's
cluster and stat prefix or the HTTP connection manager's stat prefix and virtual hosts
(name, domains, cluster; `no_match` is the 503 host). Everything a chain of that kind always
has (the router filter, loopback as internal address, the 503 message) is put back by
`expand`, and `expand(compact(x)) == x` is asserted on our output, so nothing escapes the
comparison.
"""

from __future__ import annotations

import copy
from typing import Any

from reconciler.policies.meshpassthrough.envoy import NO_MATCH_MESSAGE

_TCP = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def compact(listener: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in listener.items() if k != "filterChains"}
    out["chains"] = [_compact_chain(c) for c in listener.get("filterChains") or ()]
    return out


def _compact_chain(chain: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in chain:
        out["name"] = chain["name"]
    if "filterChainMatch" in chain:
        out["match"] = chain["filterChainMatch"]
    (only,) = chain["filters"]
    config = only["typedConfig"]
    if config["@type"] == _TCP:
        out["tcp"] = {"cluster": config["cluster"], "stat": config["statPrefix"]}
        return out
    hosts: list[Any] = []
    for host in config["routeConfig"]["virtualHosts"]:
        if host["name"] == "no_match":
            hosts.append("no_match")
        else:
            (route,) = host["routes"]
            hosts.append({"name": host["name"], "domains": host["domains"], "cluster": route["route"]["cluster"]})
    internal = [f"{r['addressPrefix']}/{r['prefixLen']}" for r in config["internalAddressConfig"]["cidrRanges"]]
    out["http"] = {"stat": config["statPrefix"], "routes": config["routeConfig"]["name"], "hosts": hosts, "internal": internal}
    return out


def expand(short: dict[str, Any]) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in short.items() if k != "chains"}
    out["filterChains"] = [_expand_chain(c) for c in short["chains"]]
    return out


def _expand_chain(short: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in short:
        out["name"] = short["name"]
    if "match" in short:
        out["filterChainMatch"] = copy.deepcopy(short["match"])
    if "tcp" in short:
        config = {"@type": _TCP, "cluster": short["tcp"]["cluster"], "statPrefix": short["tcp"]["stat"]}
        out["filters"] = [{"name": "envoy.filters.network.tcp_proxy", "typedConfig": config}]
        return out
    http = short["http"]
    hosts = []
    for host in http["hosts"]:
        if host == "no_match":
            hosts.append(
                {
                    "name": "no_match",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "directResponse": {"status": 503, "body": {"inlineString": NO_MATCH_MESSAGE}}}],
                }
            )
        else:
            route = {"match": {"prefix": "/"}, "route": {"cluster": host["cluster"]}}
            hosts.append({"name": host["name"], "domains": host["domains"], "routes": [route]})
    ranges = [{"addressPrefix": c.split("/")[0], "prefixLen": int(c.split("/")[1])} for c in http["internal"]]
    config = {
        "@type": _HCM,
        "statPrefix": http["stat"],
        "httpFilters": [{"name": "envoy.filters.http.router", "typedConfig": {"@type": _ROUTER}}],
        "internalAddressConfig": {"cidrRanges": ranges},
        "routeConfig": {"name": http["routes"], "virtualHosts": hosts},
    }
    out["filters"] = [{"name": "envoy.filters.network.http_connection_manager", "typedConfig": config}]
    return out
