"""Service health from the sidecars' HDS streams (reconciler/xds/hds.py), as Kuma's HDS tracker
keeps it (pkg/hds/tracker/callbacks.go).

A proxy is admitted to HDS with its dataplane token as on ADS, and gets the health checks of
the Dataplane served to its node. Each EndpointHealthResponse becomes a `HealthReport`; when it
differs from the last one, the applied revision is rebuilt with it (`Engine.health`): the
inbounds it finds unhealthy are no endpoints, so the consumers of their services, and only
they, get new endpoints, through the same memoized build a registration takes. Reports that
arrive while a rebuild waits are taken by that rebuild. When the proxy's last HDS stream ends
its report is forgotten and its inbounds count as ready again, as Kuma does with no HDS data.
A report that takes no inbound out, where none was out before (a proxy's first, all healthy,
report), is kept for the API but rebuilds nothing: the build would be the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.service.health.v3 import hds_pb2

from reconciler.controlplane.grpc_setup import Admission
from reconciler.controlplane.loop import Reconciler
from reconciler.mesh.health import HealthReport
from reconciler.model import Resource
from reconciler.store import Applied
from reconciler.xds.admission import split_node_id
from reconciler.xds.hds_specifier import ADMIN_CLUSTER, ADMIN_CLUSTER_UNIFIED, HdsSettings, port_of_local_cluster, specifier
from reconciler.xds.security import current_call

__all__ = ["HealthEvents", "report_of"]

log = logging.getLogger("reconciler.controlplane")

ADMIN_PORT_METADATA = "dataplane.admin.port"
ADMIN_ADDRESS_METADATA = "dataplane.admin.address"
ADMIN_SOCKET_METADATA = "dataplane.admin.socketPath"
_HEALTHY = (health_check_pb2.HEALTHY, health_check_pb2.UNKNOWN)


def report_of(response: hds_pb2.EndpointHealthResponse) -> HealthReport:
    """Kuma's reading of a response: the first endpoint of each cluster counts; HEALTHY and
    UNKNOWN are healthy; `kuma:envoy:admin` is Envoy itself, `localhost:<port>` a workload port."""
    ports: dict[int, bool] = {}
    envoy = True
    for cluster in response.cluster_endpoints_health:
        if not cluster.locality_endpoints_health or not cluster.locality_endpoints_health[0].endpoints_health:
            continue
        healthy = cluster.locality_endpoints_health[0].endpoints_health[0].health_status in _HEALTHY
        if cluster.cluster_name in (ADMIN_CLUSTER, ADMIN_CLUSTER_UNIFIED):
            envoy = healthy
            continue
        port = port_of_local_cluster(cluster.cluster_name)
        if port is not None:
            ports[port] = healthy
    return HealthReport(ports, envoy)


def _metadata(node: base_pb2.Node, key: str) -> str:
    value = node.metadata.fields.get(key) if node.HasField("metadata") else None
    if value is None:
        return ""
    if value.HasField("number_value"):
        return str(int(value.number_value))
    return value.string_value if value.HasField("string_value") else ""


class HealthEvents:
    """Implements reconciler.xds.hds.HealthCallbacks for the control plane."""

    def __init__(self, reconciler: Reconciler, admission: Admission, settings: HdsSettings) -> None:
        self.reconciler = reconciler
        self.store = reconciler.store
        self.admission = admission
        self.settings = settings
        self._streams: dict[str, int] = {}
        self._specs: dict[str, dict[tuple[str, str, str], tuple[Applied, hds_pb2.HealthCheckSpecifier | None]]] = {}
        """node id → its admin metadata (port, address, socket) → the specifier computed for an
        applied revision (recomputed when it changes). Two streams of one node id may report
        different admin ports: each gets the checks of its own Envoy."""
        self._declared: tuple[Applied | None, dict[str, Resource]] = (None, {})
        self._pending = False

    async def on_hds_open(self, node: base_pb2.Node) -> str:
        node_id = str(node.id)
        mesh, name = split_node_id(node_id)
        auth = self.admission.authenticator()
        if auth is not None:
            applied = self.store.applied
            auth.use(applied.snapshot if applied else None)
            call = current_call()
            claims = auth.authenticate(node, call, mesh, name)
            registered = self.store.registered.get(node_id)
            known = registered is not None or auth.declared(mesh, name) is not None
            # Before its ADS stream registered the Dataplane its tags are unknown: mesh and name
            # are checked now, the rest by the guard's recheck after each applied revision.
            auth.authorize(claims, mesh, name, registered, check_tags=known)
            if call is not None:
                call.node_id, call.claims = node_id, claims
        self._streams[node_id] = self._streams.get(node_id, 0) + 1
        return node_id

    def hds_specifier(self, node_id: str, node: base_pb2.Node) -> hds_pb2.HealthCheckSpecifier | None:
        applied = self.store.applied
        if applied is None:
            return None
        admin = (_metadata(node, ADMIN_PORT_METADATA), _metadata(node, ADMIN_ADDRESS_METADATA), _metadata(node, ADMIN_SOCKET_METADATA))
        specs = self._specs.setdefault(node_id, {})
        known = specs.get(admin)
        if known is not None and known[0] is applied:
            return known[1]
        spec = self._compute(applied, node_id, admin)
        specs[admin] = (applied, spec)
        return spec

    def _compute(self, applied: Applied, node_id: str, admin: tuple[str, str, str]) -> hds_pb2.HealthCheckSpecifier | None:
        dp = applied.model.dataplanes.get(node_id)
        if dp is None or dp.gateway is not None:
            return None  # Kuma probes sidecars' inbounds only
        resource = self._declared_of(applied).get(node_id) if not dp.registered else None
        if resource is None:
            resource = self.store.registered.get(node_id) or self.store.peer_registered.get(node_id)
        if resource is None:
            return None
        admin_port, admin_address, admin_socket = admin
        return specifier(
            dp,
            resource.spec,
            self.settings,
            admin_port=int(admin_port) if admin_port.isdigit() else None,
            admin_address=admin_address,
            admin_socket=admin_socket,
        )

    def _declared_of(self, applied: Applied) -> Mapping[str, Resource]:
        if self._declared[0] is not applied:
            self._declared = (applied, {f"{r.mesh}.{r.name}": r for r in applied.snapshot.of_type("Dataplane")})
        return self._declared[1]

    def on_health(self, node_id: str, response: hds_pb2.EndpointHealthResponse) -> None:
        if node_id not in self._streams:
            return
        report = report_of(response)
        before = self.store.health.get(node_id)
        if before == report:
            return
        self.store.health[node_id] = report
        if _all_ready(before) and _all_ready(report):
            # A proxy's first report, all healthy, takes no inbound out: the build would equal the
            # last one. Without this every connecting proxy cost a rebuild (249 for 1,000 proxies).
            return
        log.info("health changed", extra={"node": node_id, "health": _describe(report), "before": _describe(before) if before else "-"})
        self._changed(f"health of {node_id}")

    def on_hds_close(self, node_id: str) -> None:
        count = self._streams.get(node_id, 1) - 1
        if count > 0:
            self._streams[node_id] = count
            return
        self._streams.pop(node_id, None)
        self._specs.pop(node_id, None)
        if not _all_ready(self.store.health.pop(node_id, None)):
            self._changed(f"health of {node_id} forgotten (disconnected)")

    def _changed(self, reason: str) -> None:
        engine = self.reconciler.engine
        if engine is not None:
            engine.health = dict(self.store.health)  # read by the next build, in its worker thread
        if self._pending or engine is None or self.reconciler.stopping.is_set():
            return
        self._pending = True
        asyncio.ensure_future(self._rebuild(reason))

    async def _rebuild(self, reason: str) -> None:
        self._pending = False
        await self.reconciler.rebuild(reason)


def _all_ready(report: HealthReport | None) -> bool:
    """The report takes no inbound out, as no report does (mesh/health.py's with_health)."""
    return report is None or (report.envoy and all(report.ports.values()))


def _describe(report: HealthReport) -> str:
    unhealthy = [str(p) for p, ok in sorted(report.ports.items()) if not ok]
    if not report.envoy:
        return "envoy not ready"
    return f"unhealthy ports {','.join(unhealthy)}" if unhealthy else "healthy"
