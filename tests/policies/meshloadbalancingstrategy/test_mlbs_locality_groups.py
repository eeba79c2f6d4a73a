"""Locality-aware endpoints, checked against Kuma v2.14's `locality_aware_basic` golden
(plugin/v1alpha1/testdata): one proxy in zone-1 with three affinity tags, endpoints in five
zones, three failover rules. The golden cases cover what Dataplane YAML can express; this
pins Kuma's multi-zone example exactly.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import json_format, struct_pb2

from reconciler.envoy_builders import socket_address
from reconciler.frozen import freeze
from reconciler.policies.core.plugin import HookContext
from reconciler.policies.meshloadbalancingstrategy.envoy import (
    PROXY_TAGS,
    configure_load_assignment,
    local_groups,
    locality_endpoints,
    overprovisioning_factor,
)

KUMA_BASIC_CONF = freeze(
    {
        "loadBalancer": {"type": "Random"},
        "localityAwareness": {
            "localZone": {
                "affinityTags": [
                    {"key": "k8s.io/node", "weight": 9000},
                    {"key": "k8s.io/az", "weight": 900},
                    {"key": "k8s.io/region", "weight": 90},
                ]
            },
            "crossZone": {
                "failoverThreshold": {"percentage": "99"},
                "failover": [
                    {"to": {"type": "AnyExcept", "zones": ["zone-3", "zone-4", "zone-5"]}},
                    {"from": {"zones": ["zone-1"]}, "to": {"type": "Only", "zones": ["zone-3"]}},
                    {"to": {"type": "Only", "zones": ["zone-4"]}},
                ],
            },
        },
    }
)
PROXY_TAGS_VALUE = {
    "kuma.io/service": ("backend",),
    "kuma.io/zone": ("zone-1",),
    "k8s.io/node": ("node1",),
    "k8s.io/az": ("test",),
    "k8s.io/region": ("test",),
}
ENDPOINTS = [
    ("zone-1", "192.168.1.1", {"k8s.io/node": "node1"}),
    ("zone-1", "192.168.1.2", {"k8s.io/node": "node2"}),
    ("zone-1", "192.168.1.3", {"k8s.io/az": "test"}),
    ("zone-1", "192.168.1.4", {"k8s.io/region": "test"}),
    ("zone-2", "192.168.1.5", {}),
    ("zone-3", "192.168.1.6", {}),
    ("zone-4", "192.168.1.7", {}),
    ("zone-5", "192.168.1.8", {}),
]


def _cla() -> endpoint_pb2.ClusterLoadAssignment:
    """Endpoints as the generator writes them: one unnamed locality, tags in envoy.lb."""
    lb_endpoints = []
    for zone, address, extra in ENDPOINTS:
        tags = struct_pb2.Struct()
        tags.update({"kuma.io/protocol": "http", "kuma.io/zone": zone, **extra})
        lb_endpoints.append(
            endpoint_components_pb2.LbEndpoint(
                endpoint=endpoint_components_pb2.Endpoint(address=socket_address(address, 8080)),
                metadata=base_pb2.Metadata(filter_metadata={"envoy.lb": tags}),
            )
        )
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name="backend",
        endpoints=[endpoint_components_pb2.LocalityLbEndpoints(locality=base_pb2.Locality(), lb_endpoints=lb_endpoints)],
    )


def _summary(groups: Any) -> list[tuple[str, str, int, int, list[str]]]:
    return [
        (
            g.locality.zone,
            g.locality.sub_zone,
            g.priority,
            g.load_balancing_weight.value,
            [e.endpoint.address.socket_address.address for e in g.lb_endpoints],
        )
        for g in groups
    ]


def test_affinity_tags_put_endpoints_sharing_the_proxys_values_in_weighted_sub_zones() -> None:
    groups = locality_endpoints(_cla().endpoints, KUMA_BASIC_CONF, PROXY_TAGS_VALUE, "zone-1")
    assert _summary(groups) == [
        ("zone-1", "", 0, 1, ["192.168.1.2"]),
        ("zone-1", "k8s.io/az=test", 0, 900, ["192.168.1.3"]),
        ("zone-1", "k8s.io/node=node1", 0, 9000, ["192.168.1.1"]),
        ("zone-1", "k8s.io/region=test", 0, 90, ["192.168.1.4"]),
        ("zone-2", "", 1, 0, ["192.168.1.5"]),
        ("zone-3", "", 2, 0, ["192.168.1.6"]),
        ("zone-4", "", 3, 0, ["192.168.1.7"]),
    ]  # zone-5 is admitted by no failover rule: dropped
    # Metadata travels unchanged with each endpoint.
    assert json_format.MessageToDict(groups[0].lb_endpoints[0].metadata)["filterMetadata"]["envoy.lb"]["k8s.io/node"] == "node2"


def test_affinity_weights_default_to_ninety_percent_for_the_first_tag() -> None:
    conf = freeze({"localityAwareness": {"localZone": {"affinityTags": [{"key": "a"}, {"key": "b"}, {"key": "c"}]}}})
    assert [(g.key, g.weight) for g in local_groups(conf, {"a": ("1",), "b": ("2",), "c": ("3",)})] == [("a", 900), ("b", 90), ("c", 9)]
    # A tag the proxy does not have makes no group but still counts in the weights.
    assert [(g.key, g.weight) for g in local_groups(conf, {"b": ("2",)})] == [("b", 90)]


def test_failover_threshold_sets_kumas_overprovisioning_factor() -> None:
    def factor(percentage: Any) -> int:
        return overprovisioning_factor(freeze({"localityAwareness": {"crossZone": {"failoverThreshold": {"percentage": percentage}}}}))

    assert factor("99") == 100
    assert factor(50) == 200
    assert factor("33.3") == 300
    assert overprovisioning_factor(freeze({})) == 200


def test_load_assignment_hook_reads_the_proxy_tags_added_to_the_conf() -> None:
    cla = _cla()
    conf = freeze({**KUMA_BASIC_CONF, PROXY_TAGS: PROXY_TAGS_VALUE})
    configure_load_assignment(cla, conf, HookContext("outbound", "backend", "backend", "http", "default"))
    assert [g[:4] for g in _summary(cla.endpoints)][2] == ("zone-1", "k8s.io/node=node1", 0, 9000)
    assert len(cla.endpoints) == 7
    assert cla.policy.overprovisioning_factor.value == 100


def test_a_proxy_without_a_zone_treats_every_endpoint_as_local() -> None:
    cla = _cla()
    configure_load_assignment(cla, KUMA_BASIC_CONF, HookContext("outbound", "backend", "backend", "http", "default"))
    assert _summary(cla.endpoints) == [("", "", 0, 1, [a for _, a, _ in ENDPOINTS])]
