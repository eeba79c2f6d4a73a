"""The HealthCheckSpecifier a sidecar gets over HDS: what Envoy probes and how often it reports.

Kuma v2.14.3's pkg/hds/tracker/healthcheck_generator.go, value for value:
- one cluster `kuma:envoy:admin` (`system_envoy_admin` with unified naming) with an HTTP check of
  Envoy's own admin `/ready` on 127.0.0.1 at the admin port, so a draining Envoy takes all its
  inbounds out;
- one cluster `localhost:<workload port>` per inbound that declares `serviceProbe`, a TCP check of
  the workload (`serviceAddress`:`servicePort`, defaulting as the inbound does) with the probe's
  `interval`, `timeout`, `healthyThreshold`, `unhealthyThreshold`, each defaulting to the control
  plane's check defaults, and `noTrafficInterval` always from the defaults;
- with transparent proxying and a workload that is not on loopback, the check leaves from
  127.0.0.6 (Kuma's inbound passthrough source), which the redirection lets through;
- `interval`: how often Envoy sends an EndpointHealthResponse.

The defaults are kuma-cp's `dpServer.hds` (kuma-cp.defaults.yaml).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envoy.config.core.v3 import address_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2
from envoy.service.health.v3 import hds_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from reconciler.durations import parse_duration
from reconciler.mesh.model import Dataplane

__all__ = ["HdsSettings", "CheckDefaults", "specifier", "ADMIN_CLUSTER", "ADMIN_CLUSTER_UNIFIED", "local_cluster", "port_of_local_cluster"]

ADMIN_CLUSTER = "kuma:envoy:admin"
ADMIN_CLUSTER_UNIFIED = "system_envoy_admin"
INBOUND_PASSTHROUGH_V4 = "127.0.0.6"
INBOUND_PASSTHROUGH_V6 = "::6"


@dataclass(frozen=True, slots=True)
class CheckDefaults:
    """kuma-cp's `dpServer.hds.checkDefaults`."""

    timeout: float = 2.0
    interval: float = 1.0
    no_traffic_interval: float = 1.0
    healthy_threshold: int = 1
    unhealthy_threshold: int = 1


@dataclass(frozen=True, slots=True)
class HdsSettings:
    """kuma-cp's `dpServer.hds`."""

    enabled: bool = True
    interval: float = 5.0
    """Seconds between the health reports Envoy sends."""
    refresh_interval: float = 10.0
    """Seconds between checks of a connected proxy's specifier (sent when it changed), Kuma's
    `refreshInterval`. Each check wakes every HDS stream, so at 10,000 proxies a shorter one
    costs the event loop thousands of wake-ups a second."""
    check_defaults: CheckDefaults = CheckDefaults()


def local_cluster(port: int) -> str:
    return f"localhost:{port}"


def port_of_local_cluster(name: str) -> int | None:
    host, sep, port = name.partition(":")
    return int(port) if sep and host == "localhost" and port.isdigit() else None


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def _uint(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _seconds(value: Any, default: float) -> float:
    parsed = parse_duration(value) if isinstance(value, str) else None
    return parsed if parsed is not None and parsed > 0 else default


def _socket(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _wildcard(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return True  # a host name: Kuma's loopback


def _is_v6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 6
    except ValueError:
        return False


def _probe(raw: Any) -> Mapping[str, Any] | None:
    return raw if isinstance(raw, Mapping) else None


def specifier(
    dp: Dataplane,
    spec: Mapping[str, Any],
    settings: HdsSettings,
    *,
    admin_port: int | None = None,
    admin_address: str = "",
    admin_socket: str = "",
    unified_naming: bool = False,
) -> hds_pb2.HealthCheckSpecifier:
    """The specifier for the proxy of `dp` (converted from the Dataplane `spec`).

    `admin_port`/`admin_socket` are where the proxy says its admin listens (node metadata
    `dataplane.admin.port`, `dataplane.admin.socketPath`); without them the Dataplane's admin port,
    on 127.0.0.1 as Kuma's unless the proxy's admin listens on one other address (`admin_address`)."""
    d = settings.check_defaults
    host = admin_address if admin_address and not _wildcard(admin_address) else "127.0.0.1"
    admin = address_pb2.Address(pipe=address_pb2.Pipe(path=admin_socket)) if admin_socket else _socket(host, admin_port or dp.admin_port)
    checks = [
        hds_pb2.ClusterHealthCheck(
            cluster_name=ADMIN_CLUSTER_UNIFIED if unified_naming else ADMIN_CLUSTER,
            locality_endpoints=[hds_pb2.LocalityEndpoints(endpoints=[endpoint_components_pb2.Endpoint(address=admin)])],
            health_checks=[
                health_check_pb2.HealthCheck(
                    timeout=_duration(d.timeout),
                    interval=_duration(d.interval),
                    healthy_threshold=wrappers_pb2.UInt32Value(value=d.healthy_threshold),
                    unhealthy_threshold=wrappers_pb2.UInt32Value(value=d.unhealthy_threshold),
                    no_traffic_interval=_duration(d.no_traffic_interval),
                    http_health_check=health_check_pb2.HealthCheck.HttpHealthCheck(path="/ready"),
                )
            ],
        )
    ]
    net = spec.get("networking")
    raw_inbounds = list(net.get("inbound") or ()) if isinstance(net, Mapping) else []
    # Kuma's inbounds and the converted ones are in the same order, one for one.
    for raw, inbound in zip(raw_inbounds, dp.inbounds, strict=False):
        probe = _probe(raw.get("serviceProbe") if isinstance(raw, Mapping) else None)
        if probe is None:
            continue
        check = hds_pb2.ClusterHealthCheck(
            cluster_name=local_cluster(inbound.service_port),
            locality_endpoints=[
                hds_pb2.LocalityEndpoints(
                    endpoints=[endpoint_components_pb2.Endpoint(address=_socket(inbound.service_address, inbound.service_port))]
                )
            ],
            health_checks=[
                health_check_pb2.HealthCheck(
                    timeout=_duration(_seconds(probe.get("timeout"), d.timeout)),
                    interval=_duration(_seconds(probe.get("interval"), d.interval)),
                    healthy_threshold=wrappers_pb2.UInt32Value(
                        value=_uint(probe.get("healthyThreshold", probe.get("healthy_threshold")), d.healthy_threshold)
                    ),
                    unhealthy_threshold=wrappers_pb2.UInt32Value(
                        value=_uint(probe.get("unhealthyThreshold", probe.get("unhealthy_threshold")), d.unhealthy_threshold)
                    ),
                    no_traffic_interval=_duration(d.no_traffic_interval),
                    tcp_health_check=health_check_pb2.HealthCheck.TcpHealthCheck(),
                )
            ],
        )
        if dp.transparent_proxying and not _loopback(inbound.service_address):
            source = INBOUND_PASSTHROUGH_V6 if _is_v6(inbound.service_address) else INBOUND_PASSTHROUGH_V4
            check.upstream_bind_config.CopyFrom(
                address_pb2.BindConfig(source_address=address_pb2.SocketAddress(address=source, port_value=0))
            )
        checks.append(check)
    return hds_pb2.HealthCheckSpecifier(cluster_health_checks=checks, interval=_duration(settings.interval))
