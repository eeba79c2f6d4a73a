"""MeshCircuitBreaker on Envoy clusters: connection limits and outlier detection.

Follows Kuma v2.14 (pkg/plugins/policies/meshcircuitbreaker/plugin/xds/configurer.go):

- `connectionLimits.*` → the cluster's DEFAULT-priority `circuit_breakers.thresholds` entry
  (`max_connections`, `max_pending_requests`, `max_requests`, `max_retries`,
  `max_connection_pools`); that entry always carries `track_remaining: true` so the
  `remaining_*` gauges are published.
- `outlierDetection` (unless absent or `disabled: true`) → a new `outlier_detection`: each
  detector that is configured is enforced at 100 %, each one left out at 0 %, so Envoy's own
  defaults (consecutive 5xx on at 100 %) never switch on a detector the user did not ask for.
- `outlierDetection.healthyPanicThreshold` → `common_lb_config.healthy_panic_threshold`.

The same conf shape configures the outbound cluster of a destination (`to`) and the local
cluster of an inbound (`rules`, deprecated `from`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import base_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from reconciler.durations import parse_duration
from reconciler.envoy_builders import duration
from reconciler.policies.core.plugin import HookContext, Plugin
from reconciler.policies.meshcircuitbreaker.defaults import default_policies

__all__ = [
    "PLUGIN",
    "configure_cluster",
    "ensure_track_remaining",
    "decimal_of",
    "envoy_percent",
    "CONNECTION_LIMIT_FIELDS",
]

CONNECTION_LIMIT_FIELDS = {
    "maxConnectionPools": "max_connection_pools",
    "maxConnections": "max_connections",
    "maxPendingRequests": "max_pending_requests",
    "maxRetries": "max_retries",
    "maxRequests": "max_requests",
}
"""Conf field → CircuitBreakers.Thresholds field."""


def configure_cluster(cluster: cluster_pb2.Cluster, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """The `cluster` hook: apply one merged MeshCircuitBreaker conf to an Envoy cluster."""
    _configure_circuit_breakers(cluster, conf.get("connectionLimits"))
    _configure_outlier_detection(cluster, conf.get("outlierDetection"))


def ensure_track_remaining(cluster: cluster_pb2.Cluster) -> circuit_breaker_pb2.CircuitBreakers.Thresholds:
    """The DEFAULT-priority thresholds entry, created if missing, with `track_remaining` on.

    Kuma turns it on for every cluster of every proxy, with or without a policy.
    """
    for threshold in cluster.circuit_breakers.thresholds:
        if threshold.priority == base_pb2.DEFAULT:
            threshold.track_remaining = True
            return threshold
    threshold = cluster.circuit_breakers.thresholds.add(priority=base_pb2.DEFAULT, track_remaining=True)
    return threshold


def _configure_circuit_breakers(cluster: cluster_pb2.Cluster, limits: Mapping[str, Any] | None) -> None:
    threshold = ensure_track_remaining(cluster)
    for name, field in CONNECTION_LIMIT_FIELDS.items():
        value = (limits or {}).get(name)
        if value is not None:
            getattr(threshold, field).CopyFrom(wrappers_pb2.UInt32Value(value=int(value)))


def _configure_outlier_detection(cluster: cluster_pb2.Cluster, conf: Mapping[str, Any] | None) -> None:
    if conf is None or conf.get("disabled") is True:
        return
    od = outlier_detection_pb2.OutlierDetection()
    interval = parse_duration(conf.get("interval"))
    if interval is not None:
        od.interval.CopyFrom(duration(interval))
    base_ejection = parse_duration(conf.get("baseEjectionTime"))
    if base_ejection is not None:
        od.base_ejection_time.CopyFrom(duration(base_ejection))
    if conf.get("splitExternalAndLocalErrors") is not None:
        od.split_external_local_origin_errors = bool(conf["splitExternalAndLocalErrors"])
    if conf.get("maxEjectionPercent") is not None:
        od.max_ejection_percent.value = int(conf["maxEjectionPercent"])
    _configure_detectors(od, conf.get("detectors"))
    cluster.outlier_detection.CopyFrom(od)
    panic = conf.get("healthyPanicThreshold")
    if panic is not None:
        # Envoy's default is 50 % when unset.
        cluster.common_lb_config.healthy_panic_threshold.CopyFrom(envoy_percent(panic))


def _u32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def _consecutive(
    od: outlier_detection_pb2.OutlierDetection, detector: Mapping[str, Any] | None, count_field: str, enforcing_field: str
) -> None:
    consecutive = (detector or {}).get("consecutive")
    if consecutive is None:
        getattr(od, enforcing_field).CopyFrom(_u32(0))
        return
    getattr(od, enforcing_field).CopyFrom(_u32(100))
    getattr(od, count_field).CopyFrom(_u32(int(consecutive)))


def _configure_detectors(od: outlier_detection_pb2.OutlierDetection, given: Mapping[str, Any] | None) -> None:
    detectors: Mapping[str, Any] = given or {}
    _consecutive(od, detectors.get("totalFailures"), "consecutive_5xx", "enforcing_consecutive_5xx")
    _consecutive(od, detectors.get("localOriginFailures"), "consecutive_local_origin_failure", "enforcing_consecutive_local_origin_failure")
    _consecutive(od, detectors.get("gatewayFailures"), "consecutive_gateway_failure", "enforcing_consecutive_gateway_failure")
    if given is None:
        # Kuma leaves success rate and failure percentage to Envoy's defaults (both off) here.
        return
    success = detectors.get("successRate")
    # The local-origin variants take effect only with splitExternalAndLocalErrors.
    enforcing = 0 if success is None else 100
    od.enforcing_success_rate.CopyFrom(_u32(enforcing))
    od.enforcing_local_origin_success_rate.CopyFrom(_u32(enforcing))
    if success is not None:
        if success.get("minimumHosts") is not None:
            od.success_rate_minimum_hosts.CopyFrom(_u32(int(success["minimumHosts"])))
        if success.get("requestVolume") is not None:
            od.success_rate_request_volume.CopyFrom(_u32(int(success["requestVolume"])))
        factor = success.get("standardDeviationFactor")
        if factor is not None:
            # Envoy reads the factor divided by 1000 (1900 → 1.9); Kuma truncates.
            scaled = (decimal_of(factor) * 1000).to_integral_value(rounding=ROUND_DOWN)
            od.success_rate_stdev_factor.CopyFrom(_u32(int(scaled)))
    failure = detectors.get("failurePercentage")
    enforcing = 0 if failure is None else 100
    od.enforcing_failure_percentage.CopyFrom(_u32(enforcing))
    od.enforcing_failure_percentage_local_origin.CopyFrom(_u32(enforcing))
    if failure is not None:
        if failure.get("minimumHosts") is not None:
            od.failure_percentage_minimum_hosts.CopyFrom(_u32(int(failure["minimumHosts"])))
        if failure.get("requestVolume") is not None:
            od.failure_percentage_request_volume.CopyFrom(_u32(int(failure["requestVolume"])))
        if failure.get("threshold") is not None:
            od.failure_percentage_threshold.CopyFrom(_u32(int(failure["threshold"])))


def decimal_of(value: Any) -> Decimal:
    """Kuma's NewDecimalFromIntOrString: an integer, or a decimal written as a string."""
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        return Decimal(value) if isinstance(value, (int, str)) else Decimal(str(value))
    except InvalidOperation as e:
        raise ValueError(f"not a number: {value!r}") from e


def envoy_percent(value: Any) -> percent_pb2.Percent:
    """An int-or-string percentage as Envoy's `Percent` (a double)."""
    return percent_pb2.Percent(value=float(decimal_of(value)))


PLUGIN = Plugin(kind="MeshCircuitBreaker", cluster=configure_cluster, inbound=True, outbound=True, defaults=default_policies)
"""Outbound clusters (`to`) and inbound local clusters (`rules`, `from`), and Kuma's default
MeshCircuitBreaker; see docs/policies/meshcircuitbreaker.md."""
