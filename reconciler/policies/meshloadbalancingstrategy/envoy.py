"""MeshLoadBalancingStrategy on Envoy resources: algorithm, hash policies, locality awareness.

Follows Kuma v2.14 (pkg/plugins/policies/meshloadbalancingstrategy/plugin/v1alpha1/):

- cluster: `loadBalancer.type` → `lb_policy`, with `least_request_lb_config`,
  `ring_hash_lb_config` or `maglev_lb_config` from its settings; affinity tags switch on
  `common_lb_config.locality_weighted_lb_config`.
- route: `hashPolicies` (or the deprecated `ringHash.hashPolicies` / `maglev.hashPolicies`)
  → `route.hash_policy` of the outbound routes, which ring hash and Maglev hash on.
- endpoints: localities. Endpoints outside the proxy's zone go to priority 1 unless
  `localityAwareness.disabled`; with `localZone` or `crossZone` set the endpoints are regrouped
  (locality_aware.go): local endpoints that share an affinity tag's value with the proxy go to a
  weighted sub-zone `<key>=<value>`, the rest of the zone to one weight-1 locality, other
  zones to the priority of the first failover rule that admits them (or are dropped), and
  `failoverThreshold` sets the overprovisioning factor.

Locality needs the client proxy's own tags (its zone, its affinity tag values). Endpoints and
clusters are otherwise shared by every proxy that uses a destination, so `outbound_conf` adds
the proxy's tags to the merged conf under `_proxyTags` (not a Kuma field) only when the conf
has `localZone` or `crossZone`: those proxies get their own endpoints, the others keep sharing.

This mesh has a single zone unless dataplanes say otherwise: a proxy or an endpoint without a
`kuma.io/zone` tag counts as local (Kuma tags every dataplane with its zone, so it never has
to decide this).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.route.v3 import route_components_pb2
from google.protobuf import wrappers_pb2

from reconciler.durations import parse_duration
from reconciler.envoy_builders import duration
from reconciler.frozen import freeze
from reconciler.mesh.model import Dataplane
from reconciler.policies.core.match import Destination, PolicyIndex
from reconciler.policies.core.match import outbound_conf as merged_outbound_conf
from reconciler.policies.core.plugin import HookContext, Plugin
from reconciler.policies.meshcircuitbreaker.envoy import decimal_of

__all__ = [
    "PLUGIN",
    "outbound_conf",
    "configure_cluster",
    "configure_load_assignment",
    "configure_route",
    "hash_policies",
    "hash_policy",
    "locality_endpoints",
    "local_groups",
    "cross_zone_groups",
    "overprovisioning_factor",
    "LocalGroup",
    "CrossZoneGroup",
    "ZONE_TAG",
    "PROXY_TAGS",
    "DEFAULT_OVERPROVISIONING_FACTOR",
]

KIND = "MeshLoadBalancingStrategy"
ZONE_TAG = "kuma.io/zone"
PROXY_TAGS = "_proxyTags"
"""Conf key under which `outbound_conf` passes the client proxy's tags to the hooks."""
LB_METADATA = "envoy.lb"
DEFAULT_OVERPROVISIONING_FACTOR = 200
"""Kuma's factor when no failoverThreshold is set (Envoy's own default is 140)."""

_Cluster = cluster_pb2.Cluster
_LB_POLICIES = {
    "RoundRobin": _Cluster.ROUND_ROBIN,
    "LeastRequest": _Cluster.LEAST_REQUEST,
    "RingHash": _Cluster.RING_HASH,
    "Random": _Cluster.RANDOM,
    "Maglev": _Cluster.MAGLEV,
}
_HASH_FUNCTIONS = {"XXHash": _Cluster.RingHashLbConfig.XX_HASH, "MurmurHash2": _Cluster.RingHashLbConfig.MURMUR_HASH_2}


# -- conf ------------------------------------------------------------------------------------
def outbound_conf(dp: Dataplane, dest: Destination, index: PolicyIndex) -> Mapping[str, Any] | None:
    """The merged `to` conf, plus the proxy's tags when locality awareness needs them."""
    merged = merged_outbound_conf(KIND, dp, dest, index)
    if merged is None:
        return None
    locality = merged.value.get("localityAwareness") or {}
    if locality.get("localZone") is None and locality.get("crossZone") is None:
        return merged.value
    tags = {key: sorted(values) for key, values in sorted(dp.tags().items())}
    return freeze({**merged.value, PROXY_TAGS: tags})  # type: ignore[no-any-return]


# -- cluster ---------------------------------------------------------------------------------
def configure_cluster(cluster: cluster_pb2.Cluster, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """The `cluster` hook: the balancing algorithm and locality-weighted balancing."""
    if _affinity_tags(conf):
        # Weights of the affinity sub-zones only count with locality-weighted balancing.
        cluster.common_lb_config.locality_weighted_lb_config.SetInParent()
    lb = conf.get("loadBalancer")
    if lb is None:
        return
    kind = lb.get("type")
    if kind not in _LB_POLICIES:
        return
    cluster.lb_policy = _LB_POLICIES[kind]
    if kind == "LeastRequest" and lb.get("leastRequest") is not None:
        settings = lb["leastRequest"]
        config = _Cluster.LeastRequestLbConfig()
        if settings.get("activeRequestBias") is not None:
            config.active_request_bias.default_value = float(decimal_of(settings["activeRequestBias"]))
        if settings.get("choiceCount") is not None:
            config.choice_count.value = int(settings["choiceCount"])
        cluster.least_request_lb_config.CopyFrom(config)
    elif kind == "RingHash" and lb.get("ringHash") is not None:
        settings = lb["ringHash"]
        ring = _Cluster.RingHashLbConfig()
        if settings.get("minRingSize") is not None:
            ring.minimum_ring_size.value = int(settings["minRingSize"])
        if settings.get("maxRingSize") is not None:
            ring.maximum_ring_size.value = int(settings["maxRingSize"])
        if settings.get("hashFunction") is not None:
            ring.hash_function = _HASH_FUNCTIONS.get(settings["hashFunction"], _Cluster.RingHashLbConfig.XX_HASH)
        cluster.ring_hash_lb_config.CopyFrom(ring)
    elif kind == "Maglev" and lb.get("maglev") is not None:
        maglev = _Cluster.MaglevLbConfig()
        if lb["maglev"].get("tableSize") is not None:
            maglev.table_size.value = int(lb["maglev"]["tableSize"])
        cluster.maglev_lb_config.CopyFrom(maglev)


# -- route -----------------------------------------------------------------------------------
def configure_route(route: route_components_pb2.Route, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """The `route` hook: append the hash policies to a route that forwards to a cluster."""
    policies = hash_policies(conf)
    if policies is None or not route.HasField("route"):
        return
    route.route.hash_policy.extend(hash_policy(p) for p in policies)


def hash_policies(conf: Mapping[str, Any]) -> Sequence[Mapping[str, Any]] | None:
    """`hashPolicies`, else the deprecated ones under the ring hash or Maglev settings."""
    if conf.get("hashPolicies") is not None:
        return conf["hashPolicies"]  # type: ignore[no-any-return]
    lb = conf.get("loadBalancer") or {}
    field = {"RingHash": "ringHash", "Maglev": "maglev"}.get(str(lb.get("type")))
    if field is None or lb.get(field) is None:
        return None
    return lb[field].get("hashPolicies")  # type: ignore[no-any-return]


def hash_policy(conf: Mapping[str, Any]) -> route_components_pb2.RouteAction.HashPolicy:
    """One Kuma hash policy as Envoy's RouteAction.HashPolicy.

    `SourceIP` (the deprecated name of `Connection`, with the same `connection` settings) is
    mapped like `Connection`: Kuma v2.14 emits no specifier for it, which Envoy rejects.
    """
    out = route_components_pb2.RouteAction.HashPolicy()
    if conf.get("terminal") is not None:
        out.terminal = bool(conf["terminal"])
    kind = conf.get("type")
    if kind == "Header" and conf.get("header") is not None:
        out.header.header_name = str(conf["header"]["name"])
    elif kind == "Cookie" and conf.get("cookie") is not None:
        cookie = conf["cookie"]
        out.cookie.name = str(cookie["name"])
        out.cookie.path = str(cookie.get("path") or "")
        ttl = parse_duration(cookie.get("ttl"))
        if ttl is not None:
            out.cookie.ttl.CopyFrom(duration(ttl))
    elif kind in ("Connection", "SourceIP") and conf.get("connection") is not None:
        out.connection_properties.source_ip = bool(conf["connection"].get("sourceIP"))
    elif kind == "QueryParameter" and conf.get("queryParameter") is not None:
        out.query_parameter.name = str(conf["queryParameter"]["name"])
    elif kind == "FilterState" and conf.get("filterState") is not None:
        out.filter_state.key = str(conf["filterState"]["key"])
    return out


# -- endpoints -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LocalGroup:
    """Local endpoints whose tag `key` equals the proxy's value get `weight` in a sub-zone."""

    key: str
    value: str
    weight: int


@dataclass(frozen=True, slots=True)
class CrossZoneGroup:
    """A failover rule that applies to the proxy's zone, at `priority` (its index + 1)."""

    type: str
    zones: frozenset[str]
    priority: int


def configure_load_assignment(cla: endpoint_pb2.ClusterLoadAssignment, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """The `load_assignment` hook: localities, priorities and the overprovisioning factor."""
    tags = _proxy_tags(conf)
    local_zone = _local_zone(tags)
    locality = conf.get("localityAwareness")
    aware = locality is None or locality.get("disabled") is not True
    if local_zone is not None:
        for group in cla.endpoints:
            # Kuma's NonLocalPriority; a locality without a zone is local here.
            if group.HasField("locality") and group.locality.zone not in ("", local_zone):
                group.priority = 1 if aware else 0
    if locality is not None and (locality.get("localZone") is not None or locality.get("crossZone") is not None):
        rebuilt = locality_endpoints(cla.endpoints, conf, tags, local_zone)
        del cla.endpoints[:]
        cla.endpoints.extend(rebuilt)
        cla.policy.overprovisioning_factor.CopyFrom(wrappers_pb2.UInt32Value(value=overprovisioning_factor(conf)))


def _proxy_tags(conf: Mapping[str, Any]) -> Mapping[str, tuple[str, ...]]:
    """The client proxy's tags (Kuma's Dataplane TagSet) that `outbound_conf` added."""
    return {str(k): tuple(v) for k, v in (conf.get(PROXY_TAGS) or {}).items()}


def _local_zone(tags: Mapping[str, tuple[str, ...]]) -> str | None:
    """The proxy's zone, None when it has no `kuma.io/zone` tag (then every endpoint is local)."""
    zones = sorted(tags.get(ZONE_TAG) or ())
    return zones[0] if zones else None


def _affinity_tags(conf: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    local = (conf.get("localityAwareness") or {}).get("localZone") or {}
    return local.get("affinityTags") or ()


def local_groups(conf: Mapping[str, Any], proxy_tags: Mapping[str, Iterable[str]]) -> list[LocalGroup]:
    """Kuma's getLocalLbGroups: one group per affinity tag the proxy has a value for.

    Without weights, the n-th of N tags weighs 9·10^(N-n-1): 90 % of the local traffic to the
    first tag's sub-zone, 9 % to the next, and so on.
    """
    tags = _affinity_tags(conf)
    out = []
    for i, tag in enumerate(tags):
        values = sorted(proxy_tags.get(tag["key"]) or ())
        weight = tag.get("weight")
        if weight is None:
            weight = 9 * 10 ** (len(tags) - i - 1)
        if values:
            out.append(LocalGroup(str(tag["key"]), values[0], int(weight)))
    return out


def cross_zone_groups(conf: Mapping[str, Any], local_zone: str) -> list[CrossZoneGroup]:
    """Kuma's getCrossZoneLbGroups: the failover rules that apply from `local_zone`."""
    cross = (conf.get("localityAwareness") or {}).get("crossZone") or {}
    out = []
    for index, rule in enumerate(cross.get("failover") or ()):
        source = rule.get("from")
        if source is not None and local_zone not in (source.get("zones") or ()):
            continue
        kind = (rule.get("to") or {}).get("type")
        zones = frozenset((rule.get("to") or {}).get("zones") or ())
        if kind in ("Any", "AnyExcept", "Only"):
            out.append(CrossZoneGroup(kind, zones, index + 1))
        else:
            out.append(CrossZoneGroup("None", frozenset(), 0))
    return out


def overprovisioning_factor(conf: Mapping[str, Any]) -> int:
    """100 / failoverThreshold.percentage, truncated, times 100 (Kuma's formula); 200 if unset."""
    threshold = ((conf.get("localityAwareness") or {}).get("crossZone") or {}).get("failoverThreshold")
    if threshold is None:
        return DEFAULT_OVERPROVISIONING_FACTOR
    try:
        value = float(decimal_of(threshold.get("percentage")))
    except ValueError:
        return DEFAULT_OVERPROVISIONING_FACTOR
    if value == 0:
        return DEFAULT_OVERPROVISIONING_FACTOR
    return int(100 / value) * 100


@dataclass(frozen=True, slots=True)
class _Locality:
    zone: str
    sub_zone: str = ""
    weight: int = 0
    priority: int = 0


def _endpoint_tags(e: endpoint_components_pb2.LbEndpoint) -> dict[str, str]:
    fields = e.metadata.filter_metadata[LB_METADATA].fields if LB_METADATA in e.metadata.filter_metadata else {}
    return {k: v.string_value for k, v in fields.items()}


def _cross_zone_locality(groups: Sequence[CrossZoneGroup], zone: str) -> _Locality | None:
    for group in groups:
        if group.type == "Any" or (group.type == "AnyExcept" and zone not in group.zones) or (group.type == "Only" and zone in group.zones):
            return _Locality(zone, priority=group.priority)
    return None


def locality_endpoints(
    existing: Iterable[endpoint_components_pb2.LocalityLbEndpoints],
    conf: Mapping[str, Any],
    proxy_tags: Mapping[str, Iterable[str]],
    local_zone: str | None,
) -> list[endpoint_components_pb2.LocalityLbEndpoints]:
    """Kuma's NewEndpoints: the endpoints regrouped into localities for a proxy.

    `local_zone` None means the proxy has no zone: every endpoint is then local, as is an
    endpoint without a `kuma.io/zone` tag.
    """
    locals_ = local_groups(conf, proxy_tags)
    cross = cross_zone_groups(conf, local_zone or "")
    grouped: dict[_Locality, list[endpoint_components_pb2.LbEndpoint]] = {}
    for group in existing:
        for e in group.lb_endpoints:
            tags = _endpoint_tags(e)
            zone = tags.get(ZONE_TAG, "")
            locality: _Locality | None
            if local_zone is None or zone in ("", local_zone):
                locality = _Locality(local_zone or "", weight=1)
                for rule in locals_:
                    if tags.get(rule.key) == rule.value:
                        locality = _Locality(local_zone or "", f"{rule.key}={rule.value}", rule.weight)
                        break
            else:
                locality = _cross_zone_locality(cross, zone)
            if locality is not None:
                copy = endpoint_components_pb2.LbEndpoint()
                copy.CopyFrom(e)
                grouped.setdefault(locality, []).append(copy)
    out = []
    for locality, endpoints in grouped.items():
        item = endpoint_components_pb2.LocalityLbEndpoints(
            locality=base_pb2.Locality(zone=locality.zone, sub_zone=locality.sub_zone),
            lb_endpoints=sorted(endpoints, key=_address_key),
            priority=locality.priority,
        )
        if locality.weight > 0:
            item.load_balancing_weight.value = locality.weight
        out.append(item)
    # Kuma's order: by zone and sub-zone name; without names, smaller groups first.
    return sorted(out, key=lambda g: (g.locality.region + g.locality.zone + g.locality.sub_zone, len(g.lb_endpoints)))


def _address_key(e: endpoint_components_pb2.LbEndpoint) -> tuple[str, int]:
    address = e.endpoint.address.socket_address
    return (address.address, address.port_value)


PLUGIN = Plugin(
    kind="MeshLoadBalancingStrategy",
    cluster=configure_cluster,
    load_assignment=configure_load_assignment,
    route=configure_route,
    inbound=False,
    outbound=True,
    outbound_conf=outbound_conf,
)
"""Outbound only (`to`): clusters, endpoints and outbound routes; see docs/policies/meshloadbalancingstrategy.md."""
