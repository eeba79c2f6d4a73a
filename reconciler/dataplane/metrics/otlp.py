"""Prometheus text (Envoy's stats, an application's /metrics) → OTLP metrics, as kuma-dp maps them.

kuma-dp's OpenTelemetry backend scrapes the same sources as its Prometheus endpoint and hands the
result to the OpenTelemetry SDK, which pushes it over OTLP. This module is that mapping
(kuma-dp's `metrics_format_mapper.go`), producing the OTLP protobufs directly:

- counter → monotonic cumulative Sum, gauge → Gauge, both with double data points;
- histogram → cumulative explicit-bucket Histogram (the `+Inf` bucket has no bound; Prometheus'
  cumulative bucket counts become per-bucket counts);
- summary → a Gauge of the quantiles (attribute `quantile`), Sums `<name>_count` and `<name>_sum`
  (Kuma's choice: the OpenTelemetry Prometheus exporter cannot carry summaries);
- untyped series are dropped, as kuma-dp drops them;
- labels `otel_scope_name`/`_version`/`_schema_url` and other `otel_scope_*` pick the
  instrumentation scope (the rest of the prefix becomes a scope attribute); series without any
  `otel_scope_*` label belong to scope `kuma` with kuma-dp's version;
- every data point gets the labels plus the proxy's extra attributes (`mesh`, `service`, …, from
  the MeshMetric dynamic config), sorted by key, an extra attribute winning over a same-named label;
- a data point's time is the sample's own timestamp when the text has one, else the scrape time;
  the start time is left unset (0), as the Go SDK leaves it for produced metrics.

Parsing uses prometheus_client's parser; `parse` undoes its one rewrite that would change names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = [
    "KUMA_SCOPE",
    "Scope",
    "export_request",
    "from_families",
    "from_prometheus_text",
    "parse",
    "resource_attributes",
    "FamilyLike",
    "SampleLike",
]

KUMA_SCOPE = "kuma"
_SCOPE_PREFIX = "otel_scope_"
_CUMULATIVE = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """An OTLP instrumentation scope; hashable so data points group by it."""

    name: str = ""
    version: str = ""
    schema_url: str = ""
    attributes: tuple[tuple[str, str], ...] = ()


Scoped = dict[Scope, list[metrics_pb2.Metric]]


class SampleLike(Protocol):
    """A sample as prometheus_client's parser or dataplane/metrics/exposition.py gives it
    (`timestamp`, in seconds, is read when the object has one)."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> dict[str, str]: ...

    @property
    def value(self) -> float: ...


class FamilyLike(Protocol):
    """A metric family: `name` as declared, `type`, samples; `documentation` or `help`."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def samples(self) -> Sequence[Any]: ...


def parse(text: str) -> list[Family]:
    """Prometheus text → metric families, names as exposed.

    prometheus_client reports a counter family without `_total` and appends `_total` to samples of
    a counter declared without it (`# TYPE envoy_cluster_assignment_stale counter`); Kuma's Go
    parser keeps the declared name, which is the OTLP metric's name, so the declared name is
    restored from the text's TYPE lines.
    """
    declared_counters = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "#" and parts[1] == "TYPE" and parts[3] == "counter":
            declared_counters.add(parts[2])
    families: list[Family] = []
    for family in text_string_to_metric_families(text):
        if family.type == "counter" and family.name not in declared_counters:
            if family.name + "_total" in declared_counters:
                family.name += "_total"
            else:
                # Declared without `_total`: the parser appended it to each sample name.
                family.samples = [s._replace(name=s.name.removesuffix("_total")) for s in family.samples]
        families.append(family)
    return families


def from_prometheus_text(text: str, kuma_version: str, extra: Mapping[str, str], time_unix_nano: int) -> Scoped:
    """Parse `text` and map it (see the module docstring)."""
    return from_families(parse(text), kuma_version, extra, time_unix_nano)


def from_families(families: Iterable[FamilyLike], kuma_version: str, extra: Mapping[str, str], time_unix_nano: int) -> Scoped:
    """Map parsed families to OTLP metrics grouped by scope, in the families' order."""
    out: Scoped = {}

    def add(scope: Scope, metric: metrics_pb2.Metric) -> None:
        out.setdefault(scope, []).append(metric)

    for family in families:
        name = family.name
        help_text = str(getattr(family, "documentation", None) or getattr(family, "help", None) or "")
        plain = [_plain(s) for s in family.samples]
        if family.type in ("counter", "gauge"):
            for scope, in_scope in _by_scope(plain, kuma_version).items():
                points = [_number_point(s, extra, time_unix_nano) for s in in_scope]
                add(scope, _number_metric(name, help_text, points, monotonic=True if family.type == "counter" else None))
        elif family.type == "histogram":
            for scope, series in _series_by_scope(plain, kuma_version, "le").items():
                points_h = [_histogram_point(name, labels, samples, extra, time_unix_nano) for labels, samples in series]
                metric = metrics_pb2.Metric(name=name, description=help_text)
                metric.histogram.aggregation_temporality = _CUMULATIVE
                metric.histogram.data_points.extend(points_h)
                add(scope, metric)
        elif family.type == "summary":
            for scope, series in _series_by_scope(plain, kuma_version, "quantile").items():
                quantiles, counts, sums = [], [], []
                for labels, samples in series:
                    # A series without _count/_sum still gets 0 points, as Go's parser defaults them.
                    count = total = 0.0
                    stamp = next((s.timestamp for s in samples if s.timestamp is not None), None)
                    for s in samples:
                        if s.name == name and "quantile" in s.labels:
                            q = {**labels, "quantile": _go_float(float(s.labels["quantile"]))}
                            quantiles.append(_point(q, extra, s.value, s.timestamp, time_unix_nano))
                        elif s.name == name + "_count":
                            count = s.value
                        elif s.name == name + "_sum":
                            total = s.value
                    counts.append(_point(labels, extra, count, stamp, time_unix_nano))
                    sums.append(_point(labels, extra, total, stamp, time_unix_nano))
                add(scope, _number_metric(name, help_text, quantiles, monotonic=None))
                add(scope, _number_metric(name + "_count", help_text, counts, monotonic=True))
                add(scope, _number_metric(name + "_sum", help_text, sums, monotonic=True))
        # untyped/unknown: dropped, as kuma-dp logs "got unsupported metric type" and skips them
    return out


def _plain(sample: SampleLike) -> Sample:
    """Any sample as prometheus_client's (name, labels, value, timestamp)."""
    if isinstance(sample, Sample):
        return sample
    timestamp = getattr(sample, "timestamp", None)
    return Sample(sample.name, dict(sample.labels), float(sample.value), timestamp)


def _go_float(value: float) -> str:
    """A float as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it for quantiles ("0.5", "1")."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _scope_of(labels: Mapping[str, str], kuma_version: str) -> tuple[Scope, dict[str, str]]:
    attributes: dict[str, str] = {}
    scope_attributes: list[tuple[str, str]] = []
    name = version = schema_url = ""
    for key, value in labels.items():
        if not key.startswith(_SCOPE_PREFIX):
            attributes[key] = value
        elif key == "otel_scope_name":
            name = value
        elif key == "otel_scope_version":
            version = value
        elif key == "otel_scope_schema_url":
            schema_url = value
        else:
            scope_attributes.append((key.removeprefix(_SCOPE_PREFIX), value))
    if len(attributes) == len(labels):
        return Scope(KUMA_SCOPE, kuma_version), attributes
    return Scope(name, version, schema_url, tuple(sorted(scope_attributes))), attributes


def _by_scope(samples: Sequence[Sample], kuma_version: str) -> dict[Scope, list[Sample]]:
    grouped: dict[Scope, list[Sample]] = {}
    for s in samples:
        scope, labels = _scope_of(s.labels, kuma_version)
        grouped.setdefault(scope, []).append(s._replace(labels=labels))
    return grouped


def _series_by_scope(
    samples: Sequence[Sample], kuma_version: str, inner_label: str
) -> dict[Scope, list[tuple[dict[str, str], list[Sample]]]]:
    """Histogram/summary samples grouped into series (same labels but `inner_label`), per scope."""
    grouped: dict[Scope, dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[Sample]]]] = {}
    for s in samples:
        scope, labels = _scope_of(s.labels, kuma_version)
        own = {k: v for k, v in labels.items() if k != inner_label}
        key = tuple(sorted(own.items()))
        grouped.setdefault(scope, {}).setdefault(key, (own, []))[1].append(s)
    return {scope: list(series.values()) for scope, series in grouped.items()}


def _attributes(labels: Mapping[str, str], extra: Mapping[str, str]) -> list[common_pb2.KeyValue]:
    merged = {**labels, **extra}
    return [common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=merged[k])) for k in sorted(merged)]


def _time(timestamp: float | None, fallback_ns: int) -> int:
    # prometheus_client gives seconds; the text has milliseconds, which is what Kuma keeps.
    return round(timestamp * 1000) * 1_000_000 if timestamp is not None else fallback_ns


def _point(labels: Mapping[str, str], extra: Mapping[str, str], value: float, timestamp: Any, now_ns: int) -> metrics_pb2.NumberDataPoint:
    ts = float(timestamp) if timestamp is not None else None
    return metrics_pb2.NumberDataPoint(attributes=_attributes(labels, extra), time_unix_nano=_time(ts, now_ns), as_double=float(value))


def _number_point(s: Sample, extra: Mapping[str, str], now_ns: int) -> metrics_pb2.NumberDataPoint:
    return _point(s.labels, extra, s.value, s.timestamp, now_ns)


def _number_metric(name: str, description: str, points: list[metrics_pb2.NumberDataPoint], *, monotonic: bool | None) -> metrics_pb2.Metric:
    """A Sum (monotonic True) or a Gauge (monotonic None)."""
    metric = metrics_pb2.Metric(name=name, description=description)
    if monotonic is None:
        metric.gauge.data_points.extend(points)
    else:
        metric.sum.aggregation_temporality = _CUMULATIVE
        metric.sum.is_monotonic = monotonic
        metric.sum.data_points.extend(points)
    return metric


def _histogram_point(
    name: str, labels: Mapping[str, str], samples: list[Sample], extra: Mapping[str, str], now_ns: int
) -> metrics_pb2.HistogramDataPoint:
    point = metrics_pb2.HistogramDataPoint(attributes=_attributes(labels, extra))
    timestamp = next((float(s.timestamp) for s in samples if s.timestamp is not None), None)
    point.time_unix_nano = _time(timestamp, now_ns)
    previous = 0.0
    for s in samples:
        if s.name == name + "_bucket":
            bound = float(s.labels["le"])
            if bound != float("inf"):
                point.explicit_bounds.append(bound)
            # Prometheus buckets are cumulative; OTLP counts each bucket on its own.
            point.bucket_counts.append(int(s.value - previous))
            previous = s.value
        elif s.name == name + "_count":
            point.count = int(s.value)
        elif s.name == name + "_sum":
            point.sum = float(s.value)
    return point


def resource_attributes(service_name: str = "unknown_service:kuma-dp") -> dict[str, str]:
    """The resource every export carries.

    kuma-dp's MeterProvider uses the Go SDK's default resource: `service.name` falls back to
    `unknown_service:kuma-dp`, the SDK identifies itself, and `OTEL_SERVICE_NAME` /
    `OTEL_RESOURCE_ATTRIBUTES` from the environment override. The same here, except the SDK
    attributes name this implementation (Python, not the Go SDK).
    """
    attributes = {
        "service.name": service_name,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "mesh-reconciler",
    }
    for item in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attributes[key.strip()] = value.strip()
    if os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = os.environ["OTEL_SERVICE_NAME"]
    return attributes


def export_request(scoped: Scoped, resource: Mapping[str, str]) -> metrics_service_pb2.ExportMetricsServiceRequest:
    """One Export request: one resource, its scopes in name order."""
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.CopyFrom(resource_pb2.Resource(attributes=_attributes(resource, {})))
    for scope in sorted(scoped):
        sm = rm.scope_metrics.add()
        sm.scope.name = scope.name
        sm.scope.version = scope.version
        sm.scope.attributes.extend(_attributes(dict(scope.attributes), {}))
        sm.schema_url = scope.schema_url
        sm.metrics.extend(scoped[scope])
    return request
