"""Kuma's virtual probes listener (pkg/xds/generator/probe_generator.go): `probe:listener` on the
Dataplane's address at `probes.port`, plain HTTP, one route per probe endpoint.

A GET of an endpoint's `path` (matched exactly) goes to the local cluster of the inbound whose
workload port is `inboundPort`, its path rewritten to `inboundPath`; when no inbound has that
workload port (no local cluster to send it to) the prober is redirected there instead, as Kuma
does. With transparent proxying the listener does not bind (the redirection brings the traffic).
Other methods and paths get 404. The generator adds it before MeshProxyPatch runs, as Kuma's
probe generator runs before the policies.
"""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import wrappers_pb2

from reconciler.envoy_builders import pack, socket_address
from reconciler.mesh.model import Dataplane
from reconciler.xds.resources import LISTENER, XdsResource, resource

__all__ = ["PROBE_LISTENER", "PROBE_ROUTE_CONFIG", "probe_listener"]

PROBE_LISTENER = "probe:listener"
PROBE_ROUTE_CONFIG = "probe:route_configuration"


def _get_only() -> list[route_components_pb2.HeaderMatcher]:
    return [route_components_pb2.HeaderMatcher(name=":method", string_match=string_pb2.StringMatcher(exact="GET"))]


def _routes(dp: Dataplane, clusters: frozenset[str]) -> list[route_components_pb2.Route]:
    assert dp.probes is not None
    workload_ports = {i.service_port for i in dp.inbounds}
    routes = []
    for e in dp.probes.endpoints:
        match = route_components_pb2.RouteMatch(path=e.path, headers=_get_only())
        cluster = f"localhost:{e.inbound_port}"
        if e.inbound_port in workload_ports and cluster in clusters:
            rewrite = regex_pb2.RegexMatchAndSubstitute(pattern=regex_pb2.RegexMatcher(regex=".*"), substitution=e.inbound_path)
            action = route_components_pb2.RouteAction(cluster=cluster, regex_rewrite=rewrite)
            routes.append(route_components_pb2.Route(match=match, route=action))
        else:
            redirect = route_components_pb2.RedirectAction(port_redirect=e.inbound_port, path_redirect=e.inbound_path)
            routes.append(route_components_pb2.Route(match=match, redirect=redirect))
    return routes


def probe_listener(dp: Dataplane, clusters: frozenset[str]) -> XdsResource | None:
    """The probe listener of `dp` when it declares `probes` (sidecars only); `clusters`: the
    names of the proxy's clusters (a probe goes to a local one only when it exists)."""
    if dp.probes is None or dp.gateway is not None:
        return None
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix="probe_listener",
        route_config=route_pb2.RouteConfiguration(
            name=PROBE_ROUTE_CONFIG,
            virtual_hosts=[route_components_pb2.VirtualHost(name="probe", domains=["*"], routes=_routes(dp, clusters))],
        ),
        http_filters=[hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router()))],
        internal_address_config=hcm_pb2.HttpConnectionManager.InternalAddressConfig(
            cidr_ranges=[
                address_pb2.CidrRange(address_prefix="127.0.0.1", prefix_len=wrappers_pb2.UInt32Value(value=32)),
                address_pb2.CidrRange(address_prefix="::1", prefix_len=wrappers_pb2.UInt32Value(value=128)),
            ]
        ),
    )
    listener = listener_pb2.Listener(
        name=PROBE_LISTENER,
        address=socket_address(dp.address, dp.probes.port),
        traffic_direction=base_pb2.INBOUND,
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[listener_components_pb2.Filter(name="envoy.filters.network.http_connection_manager", typed_config=pack(hcm))]
            )
        ],
    )
    if dp.transparent_proxying:
        listener.bind_to_port.CopyFrom(wrappers_pb2.BoolValue(value=False))
    return resource(LISTENER, PROBE_LISTENER, listener)
