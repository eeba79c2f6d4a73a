"""The Envoy defaults that Kuma's generators give a sidecar (issue 12, items 7–10), checked on the
generated resources: HTTP/2 to peer sidecars, path normalization on outbound listeners, a 0s
route timeout when no MeshTimeout sets one, and Kuma's subset cluster names, prefix matches and
endpoint metadata. The traffic these settings change is in tests/e2e/test_kuma_defaults.py."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from reconciler.envoy_builders import HTTP_OPTIONS_KEY
from reconciler.mesh.model import build_mesh_model
from reconciler.mesh.routing import subset_cluster_name
from reconciler.views.proxy import proxy_views
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, ProxyResources
from reconciler.xds.resources import ROUTE as ROUTE_TYPE
from tests.support import dataplane_yaml, generate_checked, snapshot_of_text

MESH = "type: Mesh\nname: default\n"
MESH_WITHOUT_DEFAULT_TIMEOUT = "type: Mesh\nname: default\nskipCreatingInitialPolicies: [MeshTimeout]\n"

ROUTE = """\
type: MeshHTTPRoute
name: backend-route
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      rules:
        - matches:
            - path: {type: PathPrefix, value: /v2/}
          default:
            filters:
              - type: URLRewrite
                urlRewrite:
                  path: {type: ReplacePrefixMatch, replacePrefixMatch: /}
            backendRefs:
              - {kind: MeshServiceSubset, name: backend, tags: {region: us}}
"""


def _proxy(*docs: str, mesh: str = MESH, node: str = "default.web") -> ProxyResources:
    snapshot = snapshot_of_text("\n---\n".join((mesh, *docs)))
    return generate_checked(proxy_views(build_mesh_model(snapshot.resources))[node])


def _world(*extra: str, mesh: str = MESH, backend_service_port: int = 18080) -> ProxyResources:
    """web calls backend (two endpoints, regions eu and us), db (TCP) and legacy (a workload
    declared without a sidecar: its inbound is its own port)."""
    return _proxy(
        dataplane_yaml("web", "web", 8000, 18000, {"backend": 7001, "db": 7002, "legacy": 7003}),
        dataplane_yaml("backend-eu", "backend", 8080, backend_service_port, tags={"region": "eu"}),
        dataplane_yaml("backend-us", "backend", 8081, backend_service_port, tags={"region": "us"}),
        dataplane_yaml("db-1", "db", 5432, 15432, protocol="tcp"),
        dataplane_yaml("legacy-1", "legacy", 9000, 9000),
        *extra,
        mesh=mesh,
    )


def _codec(cluster: cluster_pb2.Cluster) -> str:
    if HTTP_OPTIONS_KEY not in cluster.typed_extension_protocol_options:
        return "none"
    options = http_protocol_options_pb2.HttpProtocolOptions()
    cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].Unpack(options)
    return options.explicit_http_config.WhichOneof("protocol_config") or "none"


def _hcm(resources: ProxyResources, listener: str) -> dict[str, Any]:
    config: dict[str, Any] = resources.of(LISTENER)[listener].to_dict()["filterChains"][0]["filters"][0]["typedConfig"]
    return config


# -- item 7: HTTP/2 between sidecars -------------------------------------------------------------
def test_clusters_to_peer_sidecars_speak_http2_whatever_the_protocol_and_the_local_application_keeps_http1() -> None:
    out = _world()
    clusters = {name: _codec(r.message()) for name, r in out.of(CLUSTER).items()}
    assert clusters["backend"] == "http2_protocol_options"
    # Kuma's outbound generator sets HTTP/2 on every mesh-internal cluster; tcp_proxy ignores it.
    assert clusters["db"] == "http2_protocol_options"
    # No sidecar can listen on a workload's own port: it is spoken to in its own protocol.
    assert clusters["legacy"] == "http_protocol_options"
    # The inbound's cluster to the local application stays HTTP/1.1 for an `http` service.
    assert clusters["localhost:18000"] == "http_protocol_options"


def test_a_workload_on_its_own_port_behind_transparent_proxying_is_a_sidecar() -> None:
    legacy = dataplane_yaml("legacy-1", "legacy", 9000, 9000).replace(
        "networking:\n", "networking:\n  transparentProxying:\n    redirectPortInbound: 15006\n    redirectPortOutbound: 15001\n"
    )
    out = _proxy(dataplane_yaml("web", "web", 8000, 18000, {"legacy": 7003}), legacy)
    assert _codec(out.of(CLUSTER)["legacy"].message()) == "http2_protocol_options"


# -- item 8: path normalization ------------------------------------------------------------------
def test_outbound_http_listeners_normalize_paths_as_kuma_and_inbound_ones_do_not() -> None:
    out = _world()
    outbound = _hcm(out, "outbound:127.0.0.1:7001")
    assert outbound["normalizePath"] is True
    # Kuma's sidecar outbound sets normalize_path only: no slash merging, `%2F` kept.
    assert "mergeSlashes" not in outbound and "pathWithEscapedSlashesAction" not in outbound
    inbound = _hcm(out, "inbound:127.0.0.1:8000")
    assert "normalizePath" not in inbound and "mergeSlashes" not in inbound


# -- item 9: no implicit 15 s --------------------------------------------------------------------
def test_without_a_meshtimeout_sidecar_routes_have_no_request_timeout() -> None:
    out = _world(ROUTE, mesh=MESH_WITHOUT_DEFAULT_TIMEOUT)
    routes = _hcm(out, "outbound:127.0.0.1:7001")["routeConfig"]["virtualHosts"][0]["routes"]
    assert [r["route"]["timeout"] for r in routes] == ["0s", "0s", "0s"]


def test_with_kumas_default_meshtimeout_routes_get_its_15s() -> None:
    out = _world(ROUTE)
    routes = _hcm(out, "outbound:127.0.0.1:7001")["routeConfig"]["virtualHosts"][0]["routes"]
    assert {r["route"]["timeout"] for r in routes} == {"15s"}


# -- item 10: Kuma's names, matches and metadata --------------------------------------------------
def test_subset_cluster_names_are_kumas() -> None:
    # Values from Kuma v2.14.3's meshhttproute goldens (basic.clusters / plugin_test inputs).
    assert subset_cluster_name("backend", {"region": "us"}) == "backend-c72efb5be46fae6b"
    assert subset_cluster_name("backend", {"version": "v2"}) == "backend-5b73b3f4adf20020"
    assert subset_cluster_name("backend", {"kuma.io/service": "backend"}) == "backend"
    assert subset_cluster_name("s", {"a": "1", "b": "2"}) == subset_cluster_name("s", {"b": "2", "a": "1"})


def test_a_path_prefix_is_kumas_exact_and_prefix_pair_and_rewrites_keep_one_slash() -> None:
    out = _world(ROUTE)
    routes = _hcm(out, "outbound:127.0.0.1:7001")["routeConfig"]["virtualHosts"][0]["routes"]
    assert [r["match"] for r in routes] == [{"path": "/v2"}, {"prefix": "/v2/"}, {"prefix": "/"}]
    assert routes[0]["route"]["cluster"] == routes[1]["route"]["cluster"] == "backend-c72efb5be46fae6b"
    assert routes[0]["route"]["regexRewrite"] == {"pattern": {"regex": ".*"}, "substitution": "/"}
    assert routes[1]["route"]["prefixRewrite"] == "/"
    assert routes[0]["name"] == routes[1]["name"]


def test_endpoints_carry_kumas_metadata_and_the_subset_cluster_only_its_endpoints() -> None:
    out = _world(ROUTE)
    subset = out.of(ENDPOINT)["backend-c72efb5be46fae6b"].to_dict()
    (endpoint,) = subset["endpoints"][0]["lbEndpoints"]
    assert endpoint["endpoint"]["address"]["socketAddress"]["portValue"] == 8081
    tags = {"kuma.io/protocol": "http", "region": "us"}
    assert endpoint["metadata"]["filterMetadata"] == {"envoy.lb": tags, "envoy.transport_socket_match": tags}
    assert endpoint["loadBalancingWeight"] == 1


# -- the builtin gateway, as Kuma's ----------------------------------------------------------------
GATEWAY = """\
type: Dataplane
mesh: default
name: edge-1
networking:
  address: 127.0.0.1
  gateway:
    type: BUILTIN
    tags:
      kuma.io/service: edge
---
type: MeshGateway
mesh: default
name: edge
selectors:
  - match:
      kuma.io/service: edge
conf:
  listeners:
    - port: 8080
      protocol: HTTP
---
type: MeshHTTPRoute
name: edge-routes
mesh: default
spec:
  targetRef:
    kind: MeshGateway
    name: edge
  to:
    - targetRef:
        kind: Mesh
      rules:
        - matches:
            - path: {type: PathPrefix, value: /api}
          default:
            backendRefs:
              - {kind: MeshService, name: backend}
        - matches:
            - path: {type: PathPrefix, value: /grpc}
          default:
            backendRefs:
              - {kind: MeshService, name: rpc}
"""


def _gateway(mesh: str) -> ProxyResources:
    return _proxy(
        GATEWAY,
        dataplane_yaml("backend-1", "backend", 8080, 18080),
        dataplane_yaml("rpc-1", "rpc", 8090, 18090, protocol="grpc"),
        mesh=mesh,
        node="default.edge-1",
    )


def test_gateway_backends_keep_their_protocol_with_edge_http2_windows() -> None:
    out = _gateway(MESH)
    assert _codec(out.of(CLUSTER)["backend"].message()) == "http_protocol_options"
    options = http_protocol_options_pb2.HttpProtocolOptions()
    out.of(CLUSTER)["rpc"].message().typed_extension_protocol_options[HTTP_OPTIONS_KEY].Unpack(options)
    http2 = options.explicit_http_config.http2_protocol_options
    assert (http2.initial_stream_window_size.value, http2.initial_connection_window_size.value) == (65536, 1048576)


def test_gateway_routes_have_no_timeout_of_their_own_and_normalize_like_kumas_edge() -> None:
    out = _gateway(MESH_WITHOUT_DEFAULT_TIMEOUT)
    (table,) = [r.to_dict() for r in out.of(ROUTE_TYPE).values()]
    routes = [r for vh in table["virtualHosts"] for r in vh["routes"] if "route" in r]
    # Longer prefixes first, each as Kuma's exact/prefix pair.
    assert [r["match"] for r in routes] == [{"path": "/grpc"}, {"prefix": "/grpc/"}, {"path": "/api"}, {"prefix": "/api/"}]
    assert all("timeout" not in r["route"] for r in routes)
    hcm = _hcm(out, next(n for n in out.of(LISTENER)))
    assert (hcm["normalizePath"], hcm["mergeSlashes"], hcm["pathWithEscapedSlashesAction"]) == (True, True, "UNESCAPE_AND_REDIRECT")
