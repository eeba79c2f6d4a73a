"""The snapshot consistency check (reconciler/xds/consistency.py): which dangling references
it reports, and that what Envoy gets from its bootstrap counts as there."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2

from reconciler.dataplane.bootstrap import bootstrap
from reconciler.xds.consistency import BOOTSTRAP_CLUSTERS, problems
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, ProxyResources, XdsResource, resource


def eds_cluster(name: str, service: str = "", secret: str = "") -> XdsResource:
    msg = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    msg.eds_cluster_config.eds_config.ads.SetInParent()
    if service:
        msg.eds_cluster_config.service_name = service
    if secret:
        tls = tls_pb2.UpstreamTlsContext()
        sds = tls.common_tls_context.tls_certificate_sds_secret_configs.add(name=secret)
        sds.sds_config.ads.SetInParent()
        msg.transport_socket.name = "envoy.transport_sockets.tls"
        msg.transport_socket.typed_config.Pack(tls)
    return resource(CLUSTER, name, msg)


def static_cluster(name: str) -> XdsResource:
    return resource(CLUSTER, name, cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC))


def cla(name: str) -> XdsResource:
    return resource(ENDPOINT, name, endpoint_pb2.ClusterLoadAssignment(cluster_name=name))


def route_config(name: str, *clusters: str, weighted: tuple[str, ...] = ()) -> route_pb2.RouteConfiguration:
    msg = route_pb2.RouteConfiguration(name=name)
    vh = msg.virtual_hosts.add(name="vh", domains=["*"])
    for c in clusters:
        vh.routes.add().route.cluster = c
    if weighted:
        action = vh.routes.add().route
        for c in weighted:
            action.weighted_clusters.clusters.add(name=c).weight.value = 1
    return msg


def http_listener(name: str, *, rds: str = "", inline: route_pb2.RouteConfiguration | None = None) -> XdsResource:
    hcm = hcm_pb2.HttpConnectionManager(stat_prefix=name)
    if rds:
        hcm.rds.route_config_name = rds
        hcm.rds.config_source.ads.SetInParent()
    if inline is not None:
        hcm.route_config.CopyFrom(inline)
    msg = listener_pb2.Listener(name=name)
    f = msg.filter_chains.add().filters.add(name="envoy.filters.network.http_connection_manager")
    f.typed_config.Pack(hcm)
    return resource(LISTENER, name, msg)


def tcp_listener(name: str, cluster: str, *, validation_secret: str = "") -> XdsResource:
    msg = listener_pb2.Listener(name=name)
    chain = msg.filter_chains.add()
    chain.filters.add(name="envoy.filters.network.tcp_proxy").typed_config.Pack(tcp_proxy_pb2.TcpProxy(stat_prefix=name, cluster=cluster))
    if validation_secret:
        tls = tls_pb2.DownstreamTlsContext()
        sds = tls.common_tls_context.validation_context_sds_secret_config
        sds.name = validation_secret
        sds.sds_config.ads.SetInParent()
        chain.transport_socket.name = "envoy.transport_sockets.tls"
        chain.transport_socket.typed_config.Pack(tls)
    return resource(LISTENER, name, msg)


def secret(name: str) -> XdsResource:
    msg = secret_pb2.Secret(name=name, validation_context=common_pb2.CertificateValidationContext())
    return resource(SECRET, name, msg)


CASES = {
    "everything served": ([eds_cluster("a"), cla("a"), http_listener("l", rds="r"), resource(ROUTE, "r", route_config("r", "a"))], []),
    "EDS name not served": ([eds_cluster("a")], ["CDS 'a': edsClusterConfig names EDS 'a', which is not served"]),
    "EDS service name differs from the cluster name": (
        [eds_cluster("a", service="a-svc"), cla("a")],
        ["CDS 'a': edsClusterConfig names EDS 'a-svc', which is not served"],
    ),
    "static cluster needs no EDS": ([static_cluster("s")], []),
    "RDS name not served": (
        [eds_cluster("a"), cla("a"), http_listener("l", rds="missing")],
        ["LDS 'l': filterChains[0].filters[0].typedConfig.rds names RDS 'missing', which is not served"],
    ),
    "inline route config to a cluster that does not exist": (
        [http_listener("l", inline=route_config("inline", "ghost"))],
        [
            "LDS 'l': filterChains[0].filters[0].typedConfig.routeConfig.virtualHosts[0].routes[0].route.cluster names CDS 'ghost', which is not served"
        ],
    ),
    "served route config to a cluster that does not exist": (
        [resource(ROUTE, "r", route_config("r", "ghost"))],
        ["RDS 'r': virtualHosts[0].routes[0].route.cluster names CDS 'ghost', which is not served"],
    ),
    "weighted cluster that does not exist": (
        [eds_cluster("a"), cla("a"), resource(ROUTE, "r", route_config("r", weighted=("a", "ghost")))],
        ["RDS 'r': virtualHosts[0].routes[0].route.weightedClusters.clusters[1] names CDS 'ghost', which is not served"],
    ),
    "tcp proxy to a cluster that does not exist": (
        [tcp_listener("t", "ghost")],
        ["LDS 't': filterChains[0].filters[0].typedConfig.cluster names CDS 'ghost', which is not served"],
    ),
    "bootstrap cluster counts as there": ([tcp_listener("t", "ads_cluster")], []),
    "cluster SDS secret not served": (
        [eds_cluster("a", secret="identity"), cla("a")],
        [
            "CDS 'a': transportSocket.typedConfig.commonTlsContext.tlsCertificateSdsSecretConfigs[0] "
            "names SDS 'identity', which is not served"
        ],
    ),
    "cluster SDS secret served": ([eds_cluster("a", secret="identity"), cla("a"), secret("identity")], []),
    "listener SDS secret not served": (
        [static_cluster("s"), tcp_listener("t", "s", validation_secret="ca")],
        [
            "LDS 't': filterChains[0].transportSocket.typedConfig.commonTlsContext.validationContextSdsSecretConfig "
            "names SDS 'ca', which is not served"
        ],
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_dangling_references_are_reported(case: str) -> None:
    items, expected = CASES[case]
    assert problems(ProxyResources.build(items)) == expected


def test_the_bootstrap_clusters_are_the_ones_the_check_assumes() -> None:
    doc = bootstrap(mesh="default", name="web", cp_host="127.0.0.1", cp_port=1)
    assert {c["name"] for c in doc["static_resources"]["clusters"]} == BOOTSTRAP_CLUSTERS
