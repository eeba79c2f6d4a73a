"""Simulated HDS streams for bench/xds_scale.py --hds: what a real sidecar opens beside ADS.

Envoy's HdsDelegate (source/common/upstream/health_discovery_service.cc) opens
`StreamHealthCheck` on the ADS cluster, so here on the proxy's own channel (one TCP connection,
a second HTTP/2 stream). Its first message is a HealthCheckRequest with the node, whose
metadata carries `dataplane.admin.port` as a string (reconciler/dataplane/bootstrap.py). Once a
HealthCheckSpecifier arrives it sends an EndpointHealthResponse every `interval` the specifier
gives, one HEALTHY endpoint per cluster the specifier names; before that it sends nothing. A
stream that ends is reopened with the same jittered backoff as ADS.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

BACKOFF_BASE, BACKOFF_MAX = 0.5, 30.0
ADMIN_PORT = 9901


@dataclass
class HdsState:
    specifiers: int = 0
    """HealthCheckSpecifiers received."""
    reports: int = 0
    """EndpointHealthResponses sent."""
    clusters: tuple[str, ...] = ()
    """The clusters of the last specifier."""
    retries: int = 0
    ended: Counter[str] = field(default_factory=Counter)


class HdsClient:
    """One proxy's HDS stream on its ADS channel, reopened with backoff until stopped."""

    def __init__(self, channel: Any, node_id: str) -> None:
        self.channel = channel
        self.node_id = node_id
        self.state = HdsState()
        self.stopped = False
        self.call: Any = None

    async def run(self) -> None:
        import grpc

        attempt = 0
        while not self.stopped:
            got_before = self.state.specifiers
            try:
                await self._stream()
                self.state.ended["OK"] += 1
            except grpc.aio.AioRpcError as e:
                self.state.ended[e.code().name] += 1
            if self.stopped:
                return
            attempt = 0 if self.state.specifiers > got_before else attempt + 1
            self.state.retries += 1
            await asyncio.sleep(random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt)))

    async def _stream(self) -> None:
        from envoy.config.core.v3 import base_pb2
        from envoy.service.health.v3 import hds_pb2, hds_pb2_grpc

        node = base_pb2.Node(id=self.node_id)
        node.metadata.update({"dataplane.admin.port": str(ADMIN_PORT)})
        call = self.call = hds_pb2_grpc.HealthDiscoveryServiceStub(self.channel).StreamHealthCheck()
        await call.write(hds_pb2.HealthCheckRequestOrEndpointHealthResponse(health_check_request=hds_pb2.HealthCheckRequest(node=node)))
        reporter: asyncio.Task[None] | None = None
        try:
            async for spec in call:
                self.state.specifiers += 1
                self.state.clusters = tuple(c.cluster_name for c in spec.cluster_health_checks)
                interval = spec.interval.ToNanoseconds() / 1e9 or 1.0
                if reporter is not None:
                    reporter.cancel()
                reporter = asyncio.create_task(self._report(call, interval, _healthy(self.state.clusters)))
        finally:
            if reporter is not None:
                reporter.cancel()

    async def _report(self, call: Any, interval: float, response: Any) -> None:
        # Envoy's first report comes one interval after the specifier, then one every interval.
        while True:
            await asyncio.sleep(interval)
            await call.write(response)
            self.state.reports += 1

    async def stop(self) -> None:
        self.stopped = True
        if self.call is not None:
            self.call.cancel()


_HEALTHY: dict[tuple[str, ...], Any] = {}
"""One report per distinct set of clusters: every proxy with the same checks sends the same bytes,
and building 10,000 equal messages would measure the clients, not the server."""


def _healthy(clusters: tuple[str, ...]) -> Any:
    from envoy.config.core.v3 import health_check_pb2
    from envoy.service.health.v3 import hds_pb2

    hit = _HEALTHY.get(clusters)
    if hit is None:
        response = hds_pb2.EndpointHealthResponse(
            cluster_endpoints_health=[
                hds_pb2.ClusterEndpointsHealth(
                    cluster_name=name,
                    locality_endpoints_health=[
                        hds_pb2.LocalityEndpointsHealth(endpoints_health=[hds_pb2.EndpointHealth(health_status=health_check_pb2.HEALTHY)])
                    ],
                )
                for name in clusters
            ]
        )
        hit = _HEALTHY[clusters] = hds_pb2.HealthCheckRequestOrEndpointHealthResponse(endpoint_health_response=response)
    return hit


def hds_summary(states: list[HdsState]) -> dict[str, Any]:
    return {
        "hds_specifiers": sum(s.specifiers for s in states),
        "hds_reports": sum(s.reports for s in states),
        "hds_with_workload_checks": sum(1 for s in states if len(s.clusters) > 1),
        "hds_retries": sum(s.retries for s in states),
        "hds_ended": sum((s.ended for s in states), Counter()),
    }
