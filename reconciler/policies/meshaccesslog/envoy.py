"""MeshAccessLog's effect on Envoy: access loggers on the listeners whose traffic it selects.

Follows Kuma v2.14.3 (`pkg/plugins/policies/meshaccesslog/plugin/v1alpha1/plugin.go`): the
merged conf's `backends` become Envoy access loggers appended to the listener's HTTP connection
manager (HTTP listeners) or TCP proxy (TCP listeners), in backend order:

- inbound listeners: every `rules` and `from` entry on its own, not merged (rules.py: Kuma's
  inbound rules; a rule matching clients gets a CEL filter);
- outbound listeners: the `to` conf for that destination;
- builtin gateway listeners: the listener's `to` (kind Mesh) conf as outbound traffic, then its
  inbound rules as inbound traffic (views/gateway_policies.py), on the HTTP connection managers
  of HTTP/HTTPS listeners and the TCP proxies of TCP/TLS ones.

Kuma's placeholders are resolved per proxy (`per_proxy`: `%KUMA_SOURCE_SERVICE%` names the
proxy's service), see formats.py; the backends are built in backends.py. An OpenTelemetry
backend's collector gets one cluster per proxy (`proxy_resources`); a `backendRef` is resolved
against the proxy's mesh's MeshOpenTelemetryBackends (ProxyFacts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from reconciler.envoy_builders import pack
from reconciler.policies.core.plugin import HookContext, Plugin, ProxyFacts
from reconciler.policies.meshaccesslog.backends import access_log, collector_cluster, otel_collector
from reconciler.policies.meshaccesslog.formats import KumaValues, default_format, gateway_inbound_values, kuma_values, socket_name
from reconciler.policies.meshaccesslog.rules import GATEWAY_RULES, cel_expression, cel_filter, inbound_conf
from reconciler.xds_types import CLUSTER

__all__ = ["PLUGIN", "KIND", "access_logs", "proxy_resources"]

KIND = "MeshAccessLog"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"


Rules = list[tuple[Mapping[str, Any] | None, Sequence[Mapping[str, Any]]]]


def _rules(conf: Mapping[str, Any]) -> Rules:
    """(match, backends) of a conf: an inbound's rules (rules.py), or one catch-all rule of the
    merged `backends` (outbounds, gateway listeners' `to`)."""
    if "rules" in conf:
        return [(rule.get("match"), rule.get("backends") or ()) for rule in conf["rules"]]
    return [(None, conf.get("backends") or ())]


def _gateway_inbound(conf: Mapping[str, Any]) -> Rules:
    return [(rule.get("match"), rule.get("backends") or ()) for rule in conf.get(GATEWAY_RULES) or ()]


def _loggers(rules: Rules, fmt: str, values: KumaValues, socket: str, facts: ProxyFacts | None) -> list[accesslog_pb2.AccessLog]:
    out = []
    for match, backends in rules:
        expression = cel_expression(match)
        for backend in backends:
            built = access_log(backend, fmt, values, socket, facts)
            if built is not None:
                if expression:
                    built.filter.CopyFrom(cel_filter(expression))
                out.append(built)
    return out


def access_logs(conf: Mapping[str, Any], ctx: HookContext) -> list[accesslog_pb2.AccessLog]:
    """The Envoy access loggers of one conf where `ctx` says the hook runs: on a builtin
    gateway listener, its `to` backends as outbound traffic, then its inbound rules as inbound."""
    proxy = ctx.proxy
    socket = socket_name(proxy.name, proxy.mesh) if proxy is not None else socket_name("", ctx.mesh)
    fmt = default_format(ctx.protocol)
    out = _loggers(_rules(conf), fmt, kuma_values(ctx), socket, proxy)
    if ctx.gateway:
        out += _loggers(_gateway_inbound(conf), fmt, gateway_inbound_values(ctx), socket, proxy)
    return out


def configure_http_connection_manager(hcm: hcm_pb2.HttpConnectionManager, conf: Mapping[str, Any], ctx: HookContext) -> None:
    hcm.access_log.extend(access_logs(conf, ctx))


def configure_tcp_proxy(proxy: tcp_proxy_pb2.TcpProxy, conf: Mapping[str, Any], ctx: HookContext) -> None:
    proxy.access_log.extend(access_logs(conf, ctx))


def configure_listener(listener: listener_pb2.Listener, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """An inbound whose rules match on SNI needs a TLS inspector to know it (Kuma's
    ensureTLSInspector). A builtin gateway's TCP and TLS listeners: their TCP proxies (the
    generator runs no tcp_proxy hook there); HTTP listeners are done by the HCM hook."""
    sni = any(match and match.get("sni") for match, _ in _rules(conf))
    if sni and not any(f.name == TLS_INSPECTOR for f in listener.listener_filters):
        listener.listener_filters.add(name=TLS_INSPECTOR, typed_config=pack(tls_inspector_pb2.TlsInspector()))
    if not ctx.gateway or ctx.protocol != "tcp":
        return
    logs = access_logs(conf, ctx)
    if not logs:
        return
    for chain in listener.filter_chains:
        for network_filter in chain.filters:
            if network_filter.name != TCP_PROXY:
                continue
            tcp = tcp_proxy_pb2.TcpProxy()
            network_filter.typed_config.Unpack(tcp)
            tcp.access_log.extend(logs)
            network_filter.typed_config.CopyFrom(pack(tcp))


def _collectors(confs: Iterable[Mapping[str, Any]], facts: ProxyFacts) -> list[tuple[str, int, bool]]:
    """Each collector once, by host and port (the cluster's name), first seen first."""
    out: dict[tuple[str, int], tuple[str, int, bool]] = {}
    for conf in confs:
        for backend in (b for _, backends in _rules(conf) + _gateway_inbound(conf) for b in backends):
            if backend.get("type") != "OpenTelemetry":
                continue
            target = otel_collector(backend.get("openTelemetry") or {}, facts)
            if target is not None:
                out.setdefault(target[:2], target)
    return list(out.values())


def proxy_resources(
    proxy_conf: Mapping[str, Any] | None, every_conf: Sequence[Mapping[str, Any]], facts: ProxyFacts
) -> list[tuple[str, str, Any]]:
    """One cluster per OpenTelemetry collector any access log of the proxy exports to."""
    clusters = [collector_cluster((host, port), http2) for host, port, http2 in _collectors(every_conf, facts)]
    return [(CLUSTER, c.name, c) for c in sorted(clusters, key=lambda c: c.name)]


PLUGIN = Plugin(
    kind=KIND,
    http_connection_manager=configure_http_connection_manager,
    tcp_proxy=configure_tcp_proxy,
    listener=configure_listener,
    inbound=True,
    outbound=True,
    per_proxy=True,
    proxy_resources=proxy_resources,
    inbound_conf=inbound_conf,
)
"""Access loggers on inbound, outbound and builtin gateway listeners; collector clusters."""
