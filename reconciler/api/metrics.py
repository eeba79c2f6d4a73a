"""The control plane's own Prometheus metrics, on prometheus-client, served at `GET /metrics`.

Each `Metrics` owns a `CollectorRegistry` (never the library's global one), so two control
planes in one process (tests) do not share counters. It holds:

- the events the control plane counts as they happen (reconciles by outcome, xDS pushes,
  ACKs and NACKs by type, webhooks by result) and the durations it measures (a whole
  reconcile, each reconcile phase, push → last ACK of a proxy push), as library Counters and
  Histograms that the reconcile loop, the xDS callbacks and the API routes update;
- what is read from the `Store` at scrape time (`_StoreCollector`): connected proxies per
  mesh, the Ready/Stalled/Pinned/Held states, the applied revision, NACKs per proxy and type;
- the process's own metrics (ProcessCollector: CPU, memory, open files; PlatformCollector,
  GCCollector: the Python runtime).

Label values are bounded: outcomes, types, results and phases are fixed sets (an xDS type URL
outside the five Envoy types is counted as `other`); meshes and proxies come from the applied
configuration and the connected proxies, and per-proxy NACK series are kept for at most
`MAX_NACK_PROXIES` connected proxies (the rest are summed under `proxy="(other)"`).

`exposition` is the library's text (or OpenMetrics) format chosen from the scraper's Accept
header, with one change: a value that counts (a counter that is not in seconds, a histogram's
`_bucket` and `_count`, the gauges in `COUNTING_GAUGES`) is printed as an integer, `5` rather
than the library's `5.0`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from prometheus_client import GC_COLLECTOR, CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.registry import Collector

from reconciler.store import Store
from reconciler.xds_types import SHORT_NAMES

__all__ = ["Metrics", "PHASES", "OUTCOMES", "MAX_NACK_PROXIES", "type_label"]

PHASES = ("load", "validate", "build", "generate", "push")
"""The reconcile phases timed by `reconciler_reconcile_phase_duration_seconds{phase}`."""

OUTCOMES = ("applied", "rejected", "failed", "held", "rejected-by-proxies")
"""Outcomes a reconcile is counted under; each series exists from the start (at 0)."""

WEBHOOK_RESULTS = ("accepted", "unauthorized", "ignored", "ping")

TYPE_LABELS = (*SHORT_NAMES.values(), "other")

CONDITIONS = {"Ready": ("True", "False", "Unknown"), "Stalled": ("True", "False"), "Pinned": ("True", "False"), "Held": ("True", "False")}
"""`reconciler_condition{type,status}`: for each type, 1 on its current status and 0 on the others."""

MAX_NACK_PROXIES = 200
"""Connected proxies with NACKs that get their own `reconciler_proxy_nacks_total` series."""

COUNTING_GAUGES = frozenset(
    {
        "reconciler_connected_proxies",
        "reconciler_mesh_connected_proxies",
        "reconciler_condition",
        "reconciler_applied_info",
        "process_open_fds",
        "process_max_fds",
    }
)

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def type_label(type_url: str) -> str:
    """An xDS type URL as a label value from a fixed set (a proxy may send any type URL)."""
    return SHORT_NAMES.get(type_url, "other")


class Metrics:
    def __init__(self, store: Store | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        r.register(_Runtime())
        self.reconciles = Counter("reconciler_reconciles", "Reconcile attempts by outcome.", ["outcome"], registry=r)
        self.reconcile_duration = Histogram(
            "reconciler_reconcile_duration_seconds", "Time to load, validate, build and publish a commit.", buckets=_BUCKETS, registry=r
        )
        self.phase_duration = Histogram(
            "reconciler_reconcile_phase_duration_seconds",
            "Time spent in each phase of a reconcile or rebuild (load, validate, build, generate, push).",
            ["phase"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.xds_pushes = Counter("reconciler_xds_pushes", "xDS responses sent, by type.", ["type"], registry=r)
        self.xds_resumed = Counter(
            "reconciler_xds_resumed",
            "Subscriptions of reconnecting proxies that already had the current config (nothing sent), by type.",
            ["type"],
            registry=r,
        )
        self.xds_stream_ends = Counter(
            "reconciler_xds_stream_ends",
            "ADS streams ended, by mode (sotw, delta) and gRPC status code (the log line says why).",
            ["mode", "code"],
            registry=r,
        )
        self.xds_acks = Counter("reconciler_xds_acks", "xDS responses acknowledged by proxies, by type.", ["type"], registry=r)
        self.xds_nacks = Counter("reconciler_xds_nacks", "xDS responses rejected by proxies, by type.", ["type"], registry=r)
        self.push_ack_latency = Histogram(
            "reconciler_xds_push_ack_seconds",
            "Per proxy push: from its first response sent to the ACK of its last one (pushes with a NACK are not observed).",
            buckets=_BUCKETS,
            registry=r,
        )
        self.webhooks = Counter(
            "reconciler_webhooks", "POST /hooks/git requests, by result (accepted, unauthorized, ignored, ping).", ["result"], registry=r
        )
        for outcome in OUTCOMES:
            self.reconciles.labels(outcome=outcome)
        for phase in PHASES:
            self.phase_duration.labels(phase=phase)
        for t in TYPE_LABELS:
            for family in (self.xds_pushes, self.xds_acks, self.xds_nacks):
                family.labels(type=t)
        for result in WEBHOOK_RESULTS:
            self.webhooks.labels(result=result)
        if store is not None:
            r.register(_StoreCollector(store))

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """(body, content type) for a scraper that sent `accept`."""
        encoder, content_type = choose_encoder(accept)
        return _integral_counts(encoder(_WithoutCreated(self.registry))), content_type

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 when absent), e.g. `value("reconciler_reconciles_total", outcome="applied")`."""
        return self.registry.get_sample_value(name, labels) or 0.0


class _WithoutCreated(Collector):
    """The registry without `_created` samples (a timestamp per counter and histogram that no
    dashboard reads); the library's switch for this is process-wide, this is per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class _Runtime(Collector):
    """The Python garbage collector's metrics (the library's GCCollector only registers globally)."""

    def collect(self) -> Iterable[Metric]:
        return GC_COLLECTOR.collect()


class _StoreCollector(Collector):
    """What the store says now, read at each scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        store = self.store
        connected = store.connected()
        yield GaugeMetricFamily("reconciler_connected_proxies", "Proxies with an open xDS stream.", value=len(connected))
        proxies = GaugeMetricFamily("reconciler_mesh_connected_proxies", "Proxies with an open xDS stream, per mesh.", labels=["mesh"])
        per_mesh = dict.fromkeys(store.applied.model.meshes if store.applied else (), 0)
        for p in connected:
            mesh = p.node_id.partition(".")[0]
            per_mesh[mesh] = per_mesh.get(mesh, 0) + 1
        for mesh, count in sorted(per_mesh.items()):
            proxies.add_metric([mesh], count)
        yield proxies

        applied = GaugeMetricFamily("reconciler_applied_info", "The applied revision (value 1).", labels=["revision"])
        if store.applied is not None:
            applied.add_metric([store.applied.revision], 1)
        yield applied

        condition = GaugeMetricFamily(
            "reconciler_condition",
            "The control plane's state: 1 on each condition type's current status (Ready, Stalled, Pinned, Held), 0 on the others.",
            labels=["type", "status"],
        )
        now = _current_conditions(store)
        for kind, statuses in CONDITIONS.items():
            for status in statuses:
                condition.add_metric([kind, status], 1 if now[kind] == status else 0)
        yield condition

        nacks = CounterMetricFamily(
            "reconciler_proxy_nacks",
            f"xDS responses each connected proxy rejected, by type (at most {MAX_NACK_PROXIES} proxies; the rest as proxy=(other)).",
            labels=["mesh", "proxy", "type"],
        )
        rejecting = sorted((p for p in connected if any(t.nacks for t in p.types.values())), key=lambda p: p.node_id)
        other: dict[str, int] = {}
        for i, p in enumerate(rejecting):
            mesh, _, name = p.node_id.partition(".")
            for type_url, t in sorted(p.types.items()):
                if not t.nacks:
                    continue
                if i < MAX_NACK_PROXIES:
                    nacks.add_metric([mesh, name, type_label(type_url)], t.nacks)
                else:
                    other[type_label(type_url)] = other.get(type_label(type_url), 0) + t.nacks
        for type_name, count in sorted(other.items()):
            nacks.add_metric(["", "(other)", type_name], count)
        yield nacks


def _current_conditions(store: Store) -> dict[str, str]:
    by_type = {c["type"]: c["status"] for c in store.conditions()}
    last = store.last_attempt
    held = store.pin is not None and last is not None and last.outcome == "held"
    return {
        "Ready": by_type.get("Ready", "Unknown"),
        "Stalled": by_type.get("Stalled", "False"),
        "Pinned": by_type.get("Pinned", "False"),
        "Held": "True" if held else "False",
    }


_TYPE_LINE = re.compile(r"# TYPE (\S+) (\S+)")
_INTEGRAL = re.compile(r"^(?P<head>\S+(?:\{.*\})?) (?P<int>-?\d+)\.0(?P<tail>(?: \S+)?)$")


def _integral_counts(body: bytes) -> bytes:
    """The library prints every value as a float; a count reads better as an integer."""
    out: list[str] = []
    family, kind = "", ""
    for line in body.decode().split("\n"):
        if line.startswith("#"):
            m = _TYPE_LINE.match(line)
            if m:
                family, kind = m.group(1), m.group(2)
        elif _counts(line, family, kind):
            line = _INTEGRAL.sub(r"\g<head> \g<int>\g<tail>", line)
        out.append(line)
    return "\n".join(out).encode()


def _counts(line: str, family: str, kind: str) -> bool:
    name = line.split("{", 1)[0].split(" ", 1)[0]
    if kind == "counter":
        return not family.removesuffix("_total").endswith("_seconds")
    if kind == "histogram":
        return name in (f"{family}_bucket", f"{family}_count")
    return kind == "gauge" and name in COUNTING_GAUGES
