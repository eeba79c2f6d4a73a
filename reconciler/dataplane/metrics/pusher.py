"""MeshMetric's OpenTelemetry backend on the dataplane side: collect, map, push over OTLP/gRPC.

kuma-dp's meshmetrics manager reads the MeshMetric dynamic config Envoy serves (`/meshmetric` on
the `_kuma:dynamicconfig` listener), and for every `OpenTelemetry` backend in it runs a periodic
reader: every `refreshInterval` it scrapes Envoy's stats (and the listed applications), maps them
to OTLP (otlp.py) and Exports them to the backend's `endpoint`. That endpoint is not the
collector: it is a Unix socket, relative to the work directory, on which Envoy listens and
forwards to the collector (so mTLS, retries and the cluster's stats stay Envoy's business).

Like kuma-dp: the config is polled every second (KUMA_DATAPLANE_RUNTIME_DYNAMIC_CONFIGURATION_
REFRESH_INTERVAL overrides) with its ETag, so an unchanged config costs a 304; a backend whose
endpoint or interval changes is restarted; a removed backend, and every backend on stop,
exports once more before it ends (the OpenTelemetry SDK's shutdown flush); the first export
comes one interval after a backend starts. One difference: when the config is gone (the proxy's
MeshMetric was removed, and with it the listener serving the config) every backend stops,
where kuma-dp keeps pushing into sockets Envoy no longer listens on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.metrics.v1 import metrics_pb2

from reconciler import __version__
from reconciler.dataplane.dynconf import fetch_dynamic_config, unix_path
from reconciler.dataplane.metrics import otlp
from reconciler.dataplane.metrics.collect import collect_families, metrics_section
from reconciler.dataplane.sidecar_context import SidecarContext
from reconciler.durations import parse_duration

__all__ = ["Backend", "Fetch", "MetricsPusher", "backends_of", "collect"]

_log = logging.getLogger(__name__)

MESHMETRIC_PATH = "/meshmetric"
DEFAULT_REFRESH_INTERVAL = 60.0
"""Kuma's default `refreshInterval` (1m), should the config carry none."""
EXPORT_TIMEOUT = 5.0


Fetch = Callable[[Path, str, "str | None"], "tuple[dict[str, Any] | None, str | None]"]
"""dataplane/dynconf.fetch_dynamic_config: `(document, etag)`; `(None, the etag sent)` when
unchanged; `(None, None)` when there is none (no MeshMetric with a backend: its listener is gone)."""


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    endpoint: str
    """The socket Envoy listens on, relative to the work directory (absolute is used as is)."""
    interval: float


def backends_of(config: Mapping[str, Any]) -> dict[str, Backend]:
    """The OpenTelemetry backends of a MeshMetric dynamic config (dpapi.MeshMetricDpConfig)."""
    metrics = metrics_section(config)
    out: dict[str, Backend] = {}
    for backend in metrics.get("backends") or []:
        otel = backend.get("openTelemetry")
        if backend.get("type") != "OpenTelemetry" or not isinstance(otel, Mapping) or not otel.get("endpoint"):
            continue
        interval = parse_duration(otel.get("refreshInterval")) or DEFAULT_REFRESH_INTERVAL
        name = str(backend.get("name") or otel["endpoint"])
        out[name] = Backend(name, str(otel["endpoint"]), interval)
    return out


def collect(ctx: SidecarContext, config: Mapping[str, Any], now_ns: int | None = None) -> otlp.Scoped:
    """One collection (dataplane/metrics/collect.py: Envoy's stats with `usedonly` and the
    sidecar profiles, the applications' metrics), mapped as kuma-dp maps it.

    The extra labels are not handed to the collection, which would make their names
    Prometheus-safe (`kuma.proxy_role` → `kuma_proxy_role`): kuma-dp adds them as OTLP
    attributes with their keys unchanged.
    """
    metrics = metrics_section(config)
    extra = {str(k): str(v) for k, v in (metrics.get("extraLabels") or {}).items()}
    families = collect_families({**metrics, "extraLabels": {}}, ctx)
    return otlp.from_families(families, __version__, extra, now_ns or time.time_ns())


class _Running:
    """One backend's periodic reader: its thread, its stop flag, its gRPC channel."""

    def __init__(self, backend: Backend, target: Path, produce: Callable[[], metrics_service_pb2.ExportMetricsServiceRequest]) -> None:
        self.backend = backend
        self.produce = produce
        self.stopping = threading.Event()
        # A deep work dir makes a path longer than sockaddr_un holds: dial it through an open
        # descriptor of its directory, kept open while the channel may reconnect.
        self._path = ExitStack()
        self.channel = grpc.insecure_channel(f"unix:{self._path.enter_context(unix_path(target))}")
        self.stub = metrics_service_pb2_grpc.MetricsServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.exports = 0
        self.thread = threading.Thread(target=self._run, name=f"meshmetric-otel-{backend.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self.backend.interval):
            self.export()
        self.export()  # the shutdown flush

    def export(self) -> None:
        try:
            request = self.produce()
            if request.resource_metrics and any(sm.metrics for sm in request.resource_metrics[0].scope_metrics):
                self.stub.Export(request, timeout=EXPORT_TIMEOUT)
                self.exports += 1
        except grpc.RpcError as error:
            _log.warning("OTLP export to backend %s failed: %s", self.backend.name, error.code() if hasattr(error, "code") else error)
        except Exception:  # a bad scrape must not end the reader
            _log.exception("OTLP export to backend %s failed", self.backend.name)

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        self.thread.join(timeout)
        self.channel.close()
        self._path.close()


class MetricsPusher:
    """The SidecarService pushing MeshMetric's OpenTelemetry backends."""

    name = "meshmetric-otel"

    def __init__(self, fetch: Fetch = fetch_dynamic_config, poll_interval: float | None = None) -> None:
        self._fetch = fetch
        env = parse_duration(os.environ.get("KUMA_DATAPLANE_RUNTIME_DYNAMIC_CONFIGURATION_REFRESH_INTERVAL"))
        self._poll = poll_interval or env or 1.0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._config: Mapping[str, Any] = {}
        self._running: dict[str, _Running] = {}
        self._thread: threading.Thread | None = None
        self._ctx: SidecarContext | None = None

    def start(self, ctx: SidecarContext) -> None:
        self._ctx = ctx
        if "scope_metrics" not in metrics_pb2.ResourceMetrics.DESCRIPTOR.fields_by_name:
            # xds-protos unpacks an old copy of these modules over opentelemetry-proto's when it is
            # installed after it; Envoy still runs, the push cannot.
            _log.error(
                "MeshMetric OpenTelemetry backends are off: the installed opentelemetry.proto modules are xds-protos' old copy; "
                "run `pip install --force-reinstall --no-deps opentelemetry-proto`"
            )
            return
        self._thread = threading.Thread(target=self._poll_loop, name="meshmetric-otel-config", daemon=True)
        self._thread.start()

    def apply(self, config: Mapping[str, Any]) -> None:
        """Take a new dynamic config: start, restart or stop backends to match it."""
        assert self._ctx is not None, "start() first"
        ctx = self._ctx
        desired = backends_of(config)
        with self._lock:
            self._config = config
            ended = [self._running.pop(n) for n, r in list(self._running.items()) if desired.get(n) != r.backend]
        # Outside the lock: an ending reader's last export reads the config under it.
        for r in ended:
            r.stop(EXPORT_TIMEOUT)
        with self._lock:
            for name, backend in desired.items():
                if name not in self._running:
                    target = Path(backend.endpoint) if os.path.isabs(backend.endpoint) else ctx.work_dir / backend.endpoint
                    _log.info("OTLP metrics to backend %s every %ss via %s", name, backend.interval, target)
                    self._running[name] = _Running(backend, target, self._produce)

    def exports(self) -> dict[str, int]:
        """Successful exports so far per running backend (for logs and tests)."""
        with self._lock:
            return {name: r.exports for name, r in self._running.items()}

    def _produce(self) -> metrics_service_pb2.ExportMetricsServiceRequest:
        assert self._ctx is not None
        with self._lock:
            config = self._config
        return otlp.export_request(collect(self._ctx, config), otlp.resource_attributes())

    def _poll_loop(self) -> None:
        assert self._ctx is not None
        etag: str | None = None
        while not self._stopping.is_set():
            try:
                config, new_etag = self._fetch(self._ctx.work_dir, MESHMETRIC_PATH, etag)
                if config is not None or new_etag is None or new_etag != etag:
                    # A document, or none at all: the proxy's MeshMetric (and its Envoy
                    # listeners) went away, so its readers stop too.
                    self.apply(config or {})
                etag = new_etag
            except Exception:  # keep polling: the next answer may be good
                _log.exception("MeshMetric dynamic config fetch failed")
            self._stopping.wait(self._poll)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(EXPORT_TIMEOUT)
        with self._lock:
            running, self._running = list(self._running.values()), {}
        for r in running:
            r.stop(EXPORT_TIMEOUT)
