"""reconciler.xds.static: xDS resources rewritten as one static Envoy bootstrap."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2

from reconciler.envoy_builders import ads_source, pack, socket_address
from reconciler.xds.generate.http import hcm_filter, http_connection_manager
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, ProxyResources, resource
from reconciler.xds.static import HCM_TYPE, static_bootstrap


def _eds_cluster(name: str, tls: bool = False) -> cluster_pb2.Cluster:
    c = cluster_pb2.Cluster(
        name=name, type=cluster_pb2.Cluster.EDS, eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_source())
    )
    if tls:
        context = tls_pb2.UpstreamTlsContext(
            common_tls_context=tls_pb2.CommonTlsContext(
                tls_certificate_sds_secret_configs=[secret_pb2.SdsSecretConfig(name="identity", sds_config=ads_source())]
            )
        )
        c.transport_socket.CopyFrom(base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=pack(context)))
    return c


def _assignment(name: str, address: str) -> endpoint_pb2.ClusterLoadAssignment:
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(endpoint=endpoint_components_pb2.Endpoint(address=socket_address(address, 8080)))
                ]
            )
        ],
    )


def _listener(name: str, port: int, route: str) -> listener_pb2.Listener:
    return listener_pb2.Listener(
        name=name,
        address=socket_address("127.0.0.1", port),
        filter_chains=[listener_components_pb2.FilterChain(filters=[hcm_filter(http_connection_manager(name, route))])],
    )


def _resources() -> ProxyResources:
    route = route_pb2.RouteConfiguration(
        name="outbound:backend",
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name="backend",
                domains=["*"],
                routes=[
                    route_components_pb2.Route(
                        match=route_components_pb2.RouteMatch(prefix="/"), route=route_components_pb2.RouteAction(cluster="backend")
                    )
                ],
            )
        ],
    )
    grpc_listener = listener_pb2.Listener(
        name="backend", api_listener=api_listener_pb2.ApiListener(api_listener=pack(http_connection_manager("backend", "outbound:backend")))
    )
    identity = secret_pb2.Secret(
        name="identity", tls_certificate=common_pb2.TlsCertificate(certificate_chain=base_pb2.DataSource(inline_string="cert"))
    )
    return ProxyResources.build(
        [
            resource(LISTENER, "outbound:127.0.0.1:10001", _listener("outbound:127.0.0.1:10001", 10001, "outbound:backend")),
            resource(LISTENER, "outbound:127.0.0.1:10002", _listener("outbound:127.0.0.1:10002", 10002, "outbound:missing")),
            resource(LISTENER, "backend", grpc_listener, by_name_only=True),
            resource(ROUTE, "outbound:backend", route),
            resource(CLUSTER, "backend", _eds_cluster("backend", tls=True)),
            resource(CLUSTER, "external", _eds_cluster("external")),
            resource(ENDPOINT, "backend", _assignment("backend", "10.0.0.2")),
            resource(ENDPOINT, "external", _assignment("external", "api.example.com")),
            resource(SECRET, "identity", identity),
        ]
    )


def test_static_bootstrap_inlines_routes_endpoints_and_secrets() -> None:
    config = static_bootstrap(_resources(), node_id="default.web", admin_port=9902)
    assert config["node"] == {"id": "default.web", "cluster": "web"}
    assert config["admin"]["address"]["socketAddress"] == {"address": "127.0.0.1", "portValue": 9902}
    static = config["staticResources"]

    listeners = {item["name"]: item for item in static["listeners"]}
    assert sorted(listeners) == ["outbound:127.0.0.1:10001", "outbound:127.0.0.1:10002"]  # gRPC's API listener left out
    hcm = listeners["outbound:127.0.0.1:10001"]["filterChains"][0]["filters"][0]["typedConfig"]
    assert hcm["@type"] == HCM_TYPE and "rds" not in hcm
    assert hcm["routeConfig"]["name"] == "outbound:backend"
    # A route the proxy does not have stays an RDS reference, for Envoy to report.
    assert (
        listeners["outbound:127.0.0.1:10002"]["filterChains"][0]["filters"][0]["typedConfig"]["rds"]["routeConfigName"]
        == "outbound:missing"
    )

    clusters = {item["name"]: item for item in static["clusters"]}
    assert clusters["backend"]["type"] == "STATIC" and "edsClusterConfig" not in clusters["backend"]
    assert (
        clusters["backend"]["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]["socketAddress"]["address"]
        == "10.0.0.2"
    )
    assert clusters["external"]["type"] == "STRICT_DNS"
    sds = clusters["backend"]["transportSocket"]["typedConfig"]["commonTlsContext"]["tlsCertificateSdsSecretConfigs"]
    assert sds == [{"name": "identity"}]
    assert static["secrets"] == [{"name": "identity", "tlsCertificate": {"certificateChain": {"inlineString": "cert"}}}]


def test_static_bootstrap_without_secrets_has_no_secrets_section() -> None:
    only = ProxyResources.build([resource(CLUSTER, "external", _eds_cluster("external"))])
    static = static_bootstrap(only, node_id="default.web", admin_port=9901)["staticResources"]
    assert "secrets" not in static
    assert static["clusters"][0]["loadAssignment"] == {"clusterName": "external"}
