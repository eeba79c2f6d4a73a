"""MeshPassthrough's Envoy effect, case by case against Kuma's own plugin and order tables.

kuma_plugin_cases.yaml restates Kuma v2.14.3's plugin test cases (the rewritten passthrough
listeners and the clusters, for every passthroughMode against the Mesh's passthrough, for TCP,
TLS, HTTP, mysql, IP, CIDR, domain and wildcard matches on both address families), and
kuma_order_cases.yaml its filter chain order cases. Everything our function returns is
compared: the listeners through shape.py's short form (and `expand` must give our listener
back whole), the clusters as Envoy's JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.config.cluster.v3 import cluster_pb2

from reconciler.policies.meshpassthrough.envoy import IPV4, IPV6, configure_passthrough, mesh_passthrough
from reconciler.policies.meshpassthrough.order import ordered_matchers
from reconciler.policies.meshproxypatch.envoyjson import to_json
from tests.policies.meshpassthrough.cases import CASES, catch_all_listener, run
from tests.policies.meshpassthrough.shape import compact, expand

ORDER_CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "kuma_order_cases.yaml").read_text(encoding="utf-8"))


def _plain(doc: Any) -> Any:
    return json.loads(json.dumps(doc))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_listeners_and_clusters_are_kumas(case: dict[str, Any]) -> None:
    listeners, clusters = run(case)
    listeners = _plain(listeners)
    for listener in listeners:
        assert expand(compact(listener)) == listener, "the short form holds every field"
    assert [compact(x) for x in listeners] == case["expected"]["listeners"]
    assert _plain(clusters) == case["expected"]["clusters"]


def _line(m: Any) -> str:
    routes = " ".join(f"{r.match_type.name}={r.value}" for r in m.routes)
    return f"{m.protocol} {m.port} {m.match_type.name} {m.value or '-'}" + (f" | {routes}" if routes else "")


@pytest.mark.parametrize("case", ORDER_CASES, ids=[c["name"] for c in ORDER_CASES])
def test_filter_chains_are_in_kumas_order(case: dict[str, Any]) -> None:
    assert [_line(m) for m in ordered_matchers(case["appendMatch"])] == case["expected"]


def test_two_http_protocols_on_one_port_fail_the_proxy_as_in_kuma() -> None:
    # Kuma's invalid order case: validation stops one policy doing it, merged policies still can.
    matches = [
        {"type": "Domain", "value": "example.com", "port": 8080, "protocol": "http"},
        {"type": "Domain", "value": "another.com", "port": 8080, "protocol": "http2"},
        {"type": "Domain", "value": "other.com", "port": 8080, "protocol": "tcp"},
        {"type": "Domain", "value": "anotherhttp.com", "port": 9001, "protocol": "http"},
        {"type": "Domain", "value": "http2.com", "port": 9001, "protocol": "http2"},
        {"type": "Domain", "value": "grpc.com", "port": 9001, "protocol": "grpc"},
    ]
    with pytest.raises(ValueError) as raised:
        ordered_matchers(matches)
    assert str(raised.value).split("; ") == [
        "you cannot configure http, http2, grpc on the same port 8080",
        "you cannot configure http, http2, grpc on the same port 9001",
    ]


def test_no_policy_changes_nothing_and_inputs_stay_as_given() -> None:
    ipv4 = catch_all_listener(IPV4, "0.0.0.0")
    before = to_json(ipv4)
    untouched = configure_passthrough(None, True, ipv4)
    assert untouched.ipv4 is ipv4 and untouched.clusters == ()
    conf = {"appendMatch": [{"type": "IP", "value": "10.0.0.1", "port": 80, "protocol": "tcp"}]}
    done = configure_passthrough(conf, True, ipv4)
    assert to_json(ipv4) == before, "the generator's listener is not changed in place"
    assert done.ipv4 is not None
    assert [c.name for c in done.ipv4.filter_chains] == ["meshpassthrough_tcp_10.0.0.1_80"]


def test_matched_without_matches_refuses_everything() -> None:
    # The catch-all chain stays but its cluster goes: Envoy closes every non-mesh connection.
    ipv4 = catch_all_listener(IPV4, "0.0.0.0")
    done = configure_passthrough({"passthroughMode": "Matched"}, True, ipv4, None, [cluster_pb2.Cluster(name=IPV4)])
    assert done.ipv4 is ipv4
    assert done.clusters == ()


def test_http2_and_grpc_clusters_speak_http2_and_ipv6_proxies_trust_loopback_v6() -> None:
    conf = {
        "appendMatch": [
            {"type": "Domain", "value": "h2.example.com", "port": 9000, "protocol": "http2"},
            {"type": "IP", "value": "10.0.0.9", "port": 9001, "protocol": "grpc"},
            {"type": "IP", "value": "10.0.0.9", "port": 80, "protocol": "http"},
        ]
    }
    done = configure_passthrough(conf, False, catch_all_listener(IPV4, "0.0.0.0"), catch_all_listener(IPV6, "::"), ipv6_enabled=True)
    options = {c.name: sorted(c.typed_extension_protocol_options) for c in done.clusters}
    assert options == {
        "meshpassthrough_grpc_10.0.0.9_9001": ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"],
        "meshpassthrough_http2_h2.example.com_9000": ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"],
        "meshpassthrough_http_10.0.0.9_80": [],
    }
    internal = compact(_plain(to_json(done.ipv4)))["chains"][0]["http"]["internal"]
    assert internal == ["127.0.0.1/32", "::1/128"]
    assert done.ipv6 is not None
    assert [c.name for c in done.ipv6.filter_chains] == ["meshpassthrough_http2_9000"]


def test_the_mesh_allows_passthrough_unless_it_says_false() -> None:
    assert mesh_passthrough(None) and mesh_passthrough({}) and mesh_passthrough({"networking": {"outbound": {}}})
    assert mesh_passthrough({"networking": {"outbound": {"passthrough": True}}})
    assert not mesh_passthrough({"networking": {"outbound": {"passthrough": False}}})
