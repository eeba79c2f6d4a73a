"""Envoy config of a builtin gateway proxy, from its GatewayView (see reconciler/views/gateway.py).

As Kuma's builtin gateway builds it:

| gateway listener | Envoy                                                                         |
| ---------------- | ----------------------------------------------------------------------------- |
| HTTP             | listener `<gw>:HTTP:<port>`, one HCM filter chain, RDS `<gw>:HTTP:<port>:*`  |
|                  | with a virtual host per hostname                                              |
| HTTPS            | listener `<gw>:HTTPS:<port>`, per hostname a filter chain matching the SNI    |
|                  | (`*`: any), terminating TLS with the certificates over SDS, RDS               |
|                  | `<gw>:HTTPS:<port>:<hostname>`                                                |
| TCP              | listener `<gw>:TCP:<port>`, one tcp_proxy to the MeshTCPRoute backends        |
| TLS              | listener `<gw>:TLS:<port>`, per hostname a filter chain matching the SNI;     |
|                  | TERMINATE ends TLS first, PASSTHROUGH forwards the TLS bytes as they are      |

Certificates are SDS secrets `cert.<rsa|ecdsa>:secret:<Secret name>`, served only to the
gateway proxies whose listeners use them. Backend clusters and their endpoints are built like
a sidecar's outbound clusters (EDS, mesh mTLS with the gateway's own certificate, policy hooks).
"""

from __future__ import annotations

from functools import lru_cache

from envoy.config.core.v3 import base_pb2, protocol_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.local_ratelimit.v3.local_rate_limit_pb2 import LocalRateLimit
from envoy.extensions.filters.network.connection_limit.v3 import connection_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from google.protobuf import wrappers_pb2

from reconciler.envoy_builders import ads_source, duration, pack, socket_address
from reconciler.mesh.gateway_certificates import GatewayCertificate
from reconciler.mesh.routing import WeightedCluster
from reconciler.views.gateway import GatewayListener, GatewayView, VirtualHost
from reconciler.views.gateway_policies import LISTENER_KINDS
from reconciler.xds.generate import names
from reconciler.xds.generate.hooks import HookContext, ProxyFacts, apply_hooks, proxy_for
from reconciler.xds.generate.http import hcm_filter, http_connection_manager, tcp_proxy, tcp_proxy_filter, tls_inspector
from reconciler.xds.generate.httproute import envoy_routes_of
from reconciler.xds.generate.outbound import backend_resources
from reconciler.xds.resources import LISTENER, ROUTE, SECRET, XdsResource, resource

__all__ = ["gateway_resources", "gateway_listener", "gateway_routes", "certificate_secret"]

SERVER_HEADER = "Kuma Gateway"
NO_ROUTES = "This is a Kuma MeshGateway. No routes match this MeshGateway!\n"
CONNECTION_BUFFER = 32 * 1024
REQUEST_HEADERS_TIMEOUT = 0.5
STREAM_IDLE_TIMEOUT = 5.0
IDLE_TIMEOUT = 300.0
"""Kuma's edge defaults (pkg/plugins/policies/core/defaults: DefaultGateway*)."""
HSTS = "max-age=31536000; includeSubDomains"
RATE_LIMIT = "MeshRateLimit"
RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit"


def gateway_resources(view: GatewayView, mesh: str, mtls: bool, facts: ProxyFacts | None = None) -> list[XdsResource]:
    """Listeners, route configurations, clusters, endpoints and certificates of one gateway."""
    out: list[XdsResource] = []
    certificates: dict[str, GatewayCertificate] = {}
    for listener in view.listeners:
        built = gateway_listener(view.address, view.service, listener, mesh, proxy_for(listener.confs, facts))
        if built is None:
            continue
        out.append(built)
        out.extend(gateway_routes(listener, mesh))
        for hostname in listener.hostnames:
            for cert in hostname.certificates:
                certificates.setdefault(cert.name, cert)
    for backend in view.backends:
        out.extend(backend_resources(backend, mesh, mtls, gateway=True))
    out.extend(certificate_secret(c) for c in certificates.values())
    return out


@lru_cache(maxsize=4096)
def certificate_secret(cert: GatewayCertificate) -> XdsResource:
    secret = secret_pb2.Secret(
        name=cert.name,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=cert.cert_pem),
            private_key=base_pb2.DataSource(inline_bytes=cert.key_pem),
        ),
    )
    return resource(SECRET, cert.name, secret)


# -- listeners -----------------------------------------------------------------------------------
def _hcm(service: str, route_name: str, listener: GatewayListener, mesh: str, proxy: ProxyFacts | None) -> hcm_pb2.HttpConnectionManager:
    """Kuma's edge HTTP connection manager: its server header, path normalization, timeouts,
    then the listener-level policy hooks (MeshFaultInjection, MeshRateLimit)."""
    hcm = http_connection_manager(names.stat_prefix(service), route_name)
    if _rate_limited(listener):
        # Kuma's gateway always carries this filter first, with no limit of its own (the limits
        # are per route); MeshRateLimit then fills it in place, so the limit is counted before
        # MeshFaultInjection's faults, as on Kuma's gateway. Alone it would change nothing.
        hcm.http_filters.insert(0, hcm_pb2.HttpFilter(name=RATE_LIMIT_FILTER, typed_config=pack(LocalRateLimit(stat_prefix="rate_limit"))))
    hcm.server_name = SERVER_HEADER
    hcm.use_remote_address.value = True
    hcm.normalize_path.value = True
    hcm.merge_slashes = True
    hcm.path_with_escaped_slashes_action = hcm_pb2.HttpConnectionManager.UNESCAPE_AND_REDIRECT
    hcm.request_headers_timeout.CopyFrom(duration(REQUEST_HEADERS_TIMEOUT))
    hcm.stream_idle_timeout.CopyFrom(duration(STREAM_IDLE_TIMEOUT))
    hcm.common_http_protocol_options.CopyFrom(
        protocol_pb2.HttpProtocolOptions(
            idle_timeout=duration(IDLE_TIMEOUT), headers_with_underscores_action=protocol_pb2.HttpProtocolOptions.REJECT_REQUEST
        )
    )
    hcm.http2_protocol_options.CopyFrom(
        protocol_pb2.Http2ProtocolOptions(
            max_concurrent_streams=wrappers_pb2.UInt32Value(value=100),
            initial_stream_window_size=wrappers_pb2.UInt32Value(value=64 * 1024),
            initial_connection_window_size=wrappers_pb2.UInt32Value(value=1024 * 1024),
            allow_connect=True,
        )
    )
    apply_hooks("http_connection_manager", hcm, listener.confs, _listener_context(service, mesh, "http", proxy))
    return hcm


def _listener_context(service: str, mesh: str, protocol: str, proxy: ProxyFacts | None = None) -> HookContext:
    """Listener-level gateway confs run as on an inbound: the gateway listener is where traffic
    enters the proxy (Kuma marks it INBOUND), and these kinds' hooks act on inbound listeners."""
    return HookContext("inbound", service, "", protocol, mesh, gateway=True, proxy=proxy)


def _rate_limited(listener: GatewayListener) -> bool:
    return RATE_LIMIT in listener.confs or any(
        RATE_LIMIT in route.confs for hostname in listener.hostnames for host in hostname.hosts for route in host.routes
    )


def _tcp(service: str, split: tuple[WeightedCluster, ...]) -> listener_components_pb2.Filter | None:
    live = [c for c in split if c.weight > 0]
    if not live:
        return None
    proxy = tcp_proxy(names.stat_prefix(service), live[0].name)
    if len(live) > 1:
        proxy.ClearField("cluster")
        proxy.weighted_clusters.CopyFrom(
            tcp_proxy_pb2.TcpProxy.WeightedCluster(
                clusters=[tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(name=c.name, weight=c.weight) for c in live]
            )
        )
    return tcp_proxy_filter(proxy)


def _downstream_tls(certificates: tuple[GatewayCertificate, ...], alpn: tuple[str, ...]) -> base_pb2.TransportSocket:
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_params=common_pb2.TlsParameters(tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2),
            alpn_protocols=list(alpn),
            tls_certificate_sds_secret_configs=[secret_pb2.SdsSecretConfig(name=c.name, sds_config=ads_source()) for c in certificates],
        ),
        require_client_certificate=wrappers_pb2.BoolValue(value=False),
    )
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=pack(context))


def _sni_match(hostname: str) -> listener_components_pb2.FilterChainMatch:
    match = listener_components_pb2.FilterChainMatch(transport_protocol="tls")
    if hostname not in ("", "*"):
        match.server_names.append(hostname)  # Envoy takes `*.example.com`, not a lone `*`
    return match


def _chains(service: str, listener: GatewayListener, mesh: str, proxy: ProxyFacts | None) -> list[listener_components_pb2.FilterChain]:
    protocol = listener.protocol
    if protocol == "HTTP":
        return [
            listener_components_pb2.FilterChain(
                filters=[hcm_filter(_hcm(service, listener.route_name(listener.hostnames[0]), listener, mesh, proxy))]
            )
        ]
    if protocol == "TCP":
        split = tuple(c for h in listener.hostnames for c in h.tcp)
        tcp = _tcp(service, tuple(sorted(set(split), key=lambda c: c.name)))
        return [listener_components_pb2.FilterChain(filters=[tcp])] if tcp is not None else []
    chains = []
    for hostname in listener.hostnames:
        chain = listener_components_pb2.FilterChain(filter_chain_match=_sni_match(hostname.hostname))
        if protocol == "HTTPS":
            chain.filters.append(hcm_filter(_hcm(service, listener.route_name(hostname), listener, mesh, proxy)))
            alpn: tuple[str, ...] = ("h2", "http/1.1")
        else:
            tcp = _tcp(service, hostname.tcp)
            if tcp is None:
                continue
            chain.filters.append(tcp)
            alpn = ()
        if hostname.tls_mode == "TERMINATE":
            if not hostname.certificates:
                continue  # no usable certificate: Envoy would refuse the whole listener
            chain.transport_socket.CopyFrom(_downstream_tls(hostname.certificates, alpn))
        elif hostname.tls_mode != "PASSTHROUGH" or protocol == "HTTPS":
            continue
        chains.append(chain)
    return chains


@lru_cache(maxsize=4096)
def gateway_listener(
    address: str, service: str, listener: GatewayListener, mesh: str = "", proxy: ProxyFacts | None = None
) -> XdsResource | None:
    """The Envoy listener of one gateway port (None when it has nothing to serve)."""
    chains = _chains(service, listener, mesh, proxy)
    if not chains:
        return None
    if listener.connection_limit:
        limit = connection_limit_pb2.ConnectionLimit(
            stat_prefix=names.stat_prefix(listener.name), max_connections=wrappers_pb2.UInt64Value(value=listener.connection_limit)
        )
        for chain in chains:
            chain.filters.insert(0, listener_components_pb2.Filter(name="envoy.filters.network.connection_limit", typed_config=pack(limit)))
    built = listener_pb2.Listener(
        name=listener.name,
        address=socket_address(address, listener.port),
        traffic_direction=base_pb2.INBOUND,
        per_connection_buffer_limit_bytes=wrappers_pb2.UInt32Value(value=CONNECTION_BUFFER),
        listener_filters=[tls_inspector()],
        filter_chains=chains,
    )
    # MeshRateLimit's connection limit goes first in every chain, before the connection_limit.
    protocol = "http" if listener.protocol in ("HTTP", "HTTPS") else "tcp"
    apply_hooks("listener", built, listener.confs, _listener_context(service, mesh, protocol, proxy))
    return resource(LISTENER, listener.name, built)


# -- routes --------------------------------------------------------------------------------------
def _virtual_host(host: VirtualHost, https: bool, mesh: str, listener: GatewayListener) -> rc.VirtualHost:
    vh = rc.VirtualHost(name=host.hostname, domains=[host.hostname])
    if https:
        vh.require_tls = rc.VirtualHost.ALL
        vh.response_headers_to_add.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key="Strict-Transport-Security", value=HSTS),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        )
    if not host.routes:
        not_found = rc.Route(
            match=rc.RouteMatch(prefix="/"),
            direct_response=rc.DirectResponseAction(status=404, body=base_pb2.DataSource(inline_string=NO_ROUTES)),
        )
        apply_hooks("route", not_found, listener.confs, _listener_context("", mesh, "http"))  # Kuma limits every route
        vh.routes.append(not_found)
        return vh
    for view in host.routes:
        first = view.clusters[0].name if view.clusters else ""
        # Unlike a sidecar's, Kuma's gateway routes set no request timeout of their own: without
        # a MeshTimeout (the default one sets 15s) Envoy's implicit 15 s applies.
        for route in envoy_routes_of(view):
            if route.HasField("route"):
                route.route.idle_timeout.CopyFrom(duration(STREAM_IDLE_TIMEOUT))
            apply_hooks("route", route, view.confs, HookContext("outbound", first, first, "http", mesh, route=view.origin, gateway=True))
            # Listener-level kinds: a policy aimed at this route first (MeshRateLimit keeps a limit
            # already set), then the listener's conf (Kuma's ConfigureGatewayRoute).
            inbound = _listener_context("", mesh, "http")
            apply_hooks("route", route, {k: v for k, v in view.confs.items() if k in LISTENER_KINDS}, inbound)
            apply_hooks("route", route, listener.confs, inbound)
            vh.routes.append(route)
    return vh


def _route_configuration(name: str, hosts: tuple[VirtualHost, ...], https: bool, mesh: str, listener: GatewayListener) -> XdsResource:
    config = route_pb2.RouteConfiguration(
        name=name,
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        ignore_port_in_host_matching=True,
        request_headers_to_remove=["x-kuma-tags"],
    )
    seen: set[str] = set()
    for host in hosts:
        if host.hostname in seen:
            continue  # Envoy refuses a domain twice in one route configuration
        seen.add(host.hostname)
        config.virtual_hosts.append(_virtual_host(host, https, mesh, listener))
    return resource(ROUTE, name, config)


@lru_cache(maxsize=4096)
def gateway_routes(listener: GatewayListener, mesh: str) -> tuple[XdsResource, ...]:
    """RDS of an HTTP(S) listener: one shared configuration (HTTP) or one per hostname (HTTPS)."""
    if listener.protocol == "HTTP":
        hosts = tuple(h for hostname in listener.hostnames for h in hostname.hosts)
        return (_route_configuration(listener.route_name(listener.hostnames[0]), hosts, False, mesh, listener),)
    if listener.protocol == "HTTPS":
        return tuple(
            _route_configuration(listener.route_name(h), h.hosts, True, mesh, listener) for h in listener.hostnames if h.certificates
        )
    return ()
