"""Services `run-dataplane` runs beside Envoy, as kuma-dp runs its own beside Envoy (the access-log
streamer, the metrics hijacker, the OpenTelemetry metrics pusher).

The control plane reaches them through Envoy, never directly: the generated config names Unix
sockets by paths *relative to the work directory* (Envoy runs with it as its working directory),
so the config stays a pure function of the commit and each sidecar's sockets are its own. A
service learns what to do from the config Envoy serves it (the `_kuma:dynamicconfig` listener's
`/meshmetric`, or what Envoy writes to its socket) and does nothing until asked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from reconciler.dataplane.accesslog_streamer import AccessLogStreamer
from reconciler.dataplane.metrics.hijacker import MetricsHijacker
from reconciler.dataplane.metrics.pusher import MetricsPusher
from reconciler.dataplane.sidecar_context import SidecarContext

__all__ = ["SidecarContext", "SidecarService", "sidecar_services", "start_all", "stop_all"]

log = logging.getLogger(__name__)


class SidecarService(Protocol):
    name: str

    def start(self, ctx: SidecarContext) -> None:
        """Start serving in the background (daemon threads); return at once."""

    def stop(self) -> None:
        """Stop and release sockets; bounded, never raises."""


def sidecar_services(*, dns_port: int | None = None, run_as: tuple[int, int] | None = None) -> list[SidecarService]:
    """Every service run-dataplane starts beside Envoy; with `dns_port`, the DNS proxy too (as
    the `run_as` user, when given: see dns_service.py), first: it is forked, best before the
    other services start threads."""
    services: list[SidecarService] = [AccessLogStreamer(), MetricsHijacker(), MetricsPusher()]
    if dns_port is not None:
        from reconciler.dataplane.dns_service import DnsProxyService

        services.insert(0, DnsProxyService(dns_port, run_as))
    return services


def start_all(services: Sequence[SidecarService], ctx: SidecarContext) -> None:
    """Start each service; one that cannot start is logged and left out: Envoy runs without it
    (a broken access-log streamer must not take the proxy's traffic down with it)."""
    for service in services:
        try:
            service.start(ctx)
        except Exception as e:
            log.error("sidecar service did not start; Envoy runs without it", extra={"service": service.name, "error": str(e)})


def stop_all(services: Sequence[SidecarService]) -> None:
    for service in reversed(services):
        service.stop()
