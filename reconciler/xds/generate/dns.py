"""Kuma's DNSGenerator with embedded DNS: the records the sidecar's DNS resolver answers.

kuma-dp asks Envoy for them on the `_kuma:dynamicconfig` Unix socket: `GET /dns` returns
`{"records":[{"name","ips"}],"ttl":30,"extraLabels":{...}}` (Kuma's dpapi.DNSProxyConfig,
fields in the Go struct's order, written as Go's json.Marshal writes them) with its SHA-256 as
`Etag`, and 304 to a matching `If-None-Match`. Only names whose VIP is one of the proxy's
outbounds are listed (Kuma: nothing would answer at the others). The TTL is Kuma's fixed 30 s.

MeshMetric serves `/meshmetric` from the same listener (policies/meshmetric/dynconf.py): when
both apply, one listener carries both routes, `/dns` first as in Kuma (its DNS generator runs
before the policy plugins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from reconciler.mesh.transparent import DnsRecord
from reconciler.policies.meshmetric.dynconf import LISTENER_NAME, dynamic_config_listener, go_json, sorted_map
from reconciler.xds.resources import LISTENER, XdsResource, resource

__all__ = ["DNS_PATH", "DNS_TTL", "dns_body", "dns_extra_labels", "with_dns_route"]

DNS_PATH = "/dns"
DNS_TTL = 30

_EXTRA_LABELS = (("kuma.io/workload", "kuma_workload"), ("k8s.kuma.io/namespace", "k8s_kuma_io_namespace"))


def dns_extra_labels(mesh: str, labels: Mapping[str, str]) -> dict[str, str]:
    """Kuma's dnsExtraLabels: the labels kuma-dp puts on its DNS metrics."""
    out = {target: labels[source] for source, target in _EXTRA_LABELS if labels.get(source)}
    out["mesh"] = mesh
    if labels.get("kuma.io/zone"):
        out["kuma_io_zone"] = labels["kuma.io/zone"]
    return out


def dns_body(records: Iterable[DnsRecord], mesh: str, labels: Mapping[str, str]) -> str:
    doc = {
        "records": [{"name": r.name, "ips": list(r.ips)} for r in sorted(records, key=lambda r: r.name)],
        "ttl": DNS_TTL,
        "extraLabels": sorted_map(dns_extra_labels(mesh, labels)),
    }
    return go_json(doc)


def _served(listener: listener_pb2.Listener) -> list[tuple[str, str]]:
    """(path, body) of each document an existing dynamic-config listener serves."""
    out: list[tuple[str, str]] = []
    for chain in listener.filter_chains:
        for f in chain.filters:
            manager = hcm_pb2.HttpConnectionManager()
            if not f.typed_config.Unpack(manager):
                continue
            for host in manager.route_config.virtual_hosts:
                for route in host.routes:
                    if route.direct_response.status == 200:
                        out.append((route.match.path, route.direct_response.body.inline_string))
    return out


def with_dns_route(items: list[XdsResource], body: str) -> list[XdsResource]:
    """`items` with `/dns` added to their dynamic-config listener, or with that listener."""
    routes = [(DNS_PATH, body)]
    out: list[XdsResource] = []
    for r in items:
        if r.type_url == LISTENER and r.name == LISTENER_NAME:
            existing = r.message()
            assert isinstance(existing, listener_pb2.Listener)
            routes += [(path, text) for path, text in _served(existing) if path != DNS_PATH]
        else:
            out.append(r)
    out.append(_listener(tuple(routes)))
    return out


@lru_cache(maxsize=4096)
def _listener(routes: tuple[tuple[str, str], ...]) -> XdsResource:
    """Proxies with the same documents share one listener (most of a mesh's proxies reach the same VIPs)."""
    return resource(LISTENER, LISTENER_NAME, dynamic_config_listener(routes))
