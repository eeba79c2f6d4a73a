"""Running one case of kuma_plugin_cases.yaml: the passthrough listeners and clusters Kuma's
plugin test starts from, MeshPassthrough applied, the result as Envoy's JSON."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from reconciler.envoy_builders import pack, socket_address
from reconciler.policies.meshpassthrough.envoy import IPV4, IPV6, configure_passthrough
from reconciler.policies.meshproxypatch.envoyjson import to_json

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "kuma_plugin_cases.yaml").read_text(encoding="utf-8"))


def catch_all_listener(name: str, address: str, port: int = 15001, *, original_dst: bool = False) -> listener_pb2.Listener:
    """The transparent proxy's passthrough listener: one chain sending everything to the
    ORIGINAL_DST cluster of the same name (Kuma's test builds it without use_original_dst)."""
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=name.replace(":", "_"), cluster=name)
    chain = listener_components_pb2.FilterChain(
        filters=[listener_components_pb2.Filter(name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy))]
    )
    listener = listener_pb2.Listener(
        name=name,
        address=socket_address(address, port),
        filter_chains=[chain],
        traffic_direction=2,  # OUTBOUND
    )
    if original_dst:
        listener.use_original_dst.value = True
    return listener


def run(case: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """(listeners, clusters) after MeshPassthrough, as Envoy's JSON."""
    families: Sequence[str] = case.get("listeners") or ("ipv4", "ipv6")
    ipv4 = catch_all_listener(IPV4, "0.0.0.0") if "ipv4" in families else None
    ipv6 = catch_all_listener(IPV6, "::") if "ipv6" in families else None
    given = [cluster_pb2.Cluster(name=name) for name in case.get("clusters") or ()]
    result = configure_passthrough(case["conf"], case.get("meshPassthrough", True), ipv4, ipv6, given)
    listeners = [to_json(x) for x in (result.ipv4, result.ipv6) if x is not None]
    return listeners, [to_json(c) for c in result.clusters]
