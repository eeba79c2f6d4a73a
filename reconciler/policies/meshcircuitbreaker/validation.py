"""MeshCircuitBreaker: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshCircuitBreaker limits connections and requests to a destination (`connectionLimits`)
and ejects misbehaving endpoints from load balancing (`outlierDetection`, passive health
checking). It configures outbound traffic (`to[]`), inbound traffic (`rules[]`) or, in the
deprecated form, inbound traffic per client group (`from[]`).

Kuma reports problems of `rules[i].default` under `spec.from[i].default` (a slip in its
validator); we point at the `rules` entry that has them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.checks import (
    MUST_BE_DEFINED,
    as_list,
    as_map,
    check_duration_greater_than_zero,
    check_percentage,
    enumerate_list,
    get,
    int_or_decimal_string,
)
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import affects_inbounds, check_items, check_target_ref, deprecated_top_level_kind

__all__ = ["KIND", "validate", "TOP_LEVEL_KINDS", "FROM_KINDS", "TO_KINDS", "DETECTORS"]

SPEC = Path.root("spec")

TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "MeshService", "MeshGateway", "MeshServiceSubset", "Dataplane")
FROM_KINDS = ("Mesh",)
TO_KINDS = ("Mesh", "MeshService", "MeshExternalService", "MeshMultiZoneService")
DETECTORS = ("totalFailures", "gatewayFailures", "localOriginFailures", "successRate", "failurePercentage")
CONNECTION_LIMITS = ("maxConnections", "maxConnectionPools", "maxPendingRequests", "maxRetries", "maxRequests")

_GREATER_THAN_ZERO = "must be greater than 0"
_UINT_PERCENTAGE = "must be in inclusive range [0, 100]"
# shopspring/decimal's NewFromString, which Kuma uses for int-or-string numbers.


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshCircuitBreaker validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    out.extend(
        check_target_ref(
            spec.get("targetRef"),
            SPEC.field("targetRef"),
            TOP_LEVEL_KINDS,
            gateway_listener_tags_allowed=True,
            inbound_policy=affects_inbounds(spec),
        )
    )
    has_to, has_from, has_rules = (bool(as_list(spec.get(f))) for f in ("to", "from", "rules"))
    if not (has_rules or has_to or has_from):
        out.add(SPEC, "at least one of 'from', 'to' or 'rules' has to be defined")
    if has_rules and (has_to or has_from):
        out.add(SPEC, "fields 'to' and 'from' must be empty when 'rules' is defined")
    for path, rule in enumerate_list(spec.get("rules"), SPEC.field("rules")):
        out.extend(_check_conf(get(rule, "default"), path.field("default")))
    out.extend(check_items(spec, SPEC, "from", FROM_KINDS, _check_conf))
    out.extend(check_items(spec, SPEC, "to", TO_KINDS, _check_conf))
    out.extend(_deprecations(spec))
    return list(out)


def _check_conf(conf: Any, path: Path) -> list[Violation]:
    if conf is not None and not isinstance(conf, Mapping):
        return []  # the schema reports the wrong type
    conf = as_map(conf)
    limits, outlier = conf.get("connectionLimits"), conf.get("outlierDetection")
    if limits is None and outlier is None:
        return [Violation(path, "at least one of: 'connectionLimits' or 'outlierDetection' should be configured")]
    out: list[Violation] = []
    if isinstance(limits, Mapping):
        for name in CONNECTION_LIMITS:
            out += _greater_than_zero(limits.get(name), path.field("connectionLimits").field(name))
    if isinstance(outlier, Mapping):
        out += _check_outlier_detection(outlier, path.field("outlierDetection"))
    return out


def _check_outlier_detection(outlier: Mapping[str, Any], path: Path) -> list[Violation]:
    out: list[Violation] = []
    out += check_duration_greater_than_zero(outlier.get("interval"), path.field("interval"))
    out += check_duration_greater_than_zero(outlier.get("baseEjectionTime"), path.field("baseEjectionTime"))
    out += _uint_percentage(outlier.get("maxEjectionPercent"), path.field("maxEjectionPercent"))
    out += check_percentage(outlier.get("healthyPanicThreshold"), path.field("healthyPanicThreshold"))
    detectors = outlier.get("detectors")
    detectors_path = path.field("detectors")
    if detectors is None:
        # Kuma requires detectors even when the section only sets `disabled`.
        return out + [Violation(detectors_path, f"{MUST_BE_DEFINED}: configure at least one of {', '.join(DETECTORS)}")]
    if not isinstance(detectors, Mapping):
        return out
    if all(detectors.get(name) is None for name in DETECTORS):
        return out + [Violation(detectors_path, "must have at least one defined: " + ", ".join(DETECTORS))]
    for name in ("totalFailures", "gatewayFailures", "localOriginFailures"):
        out += _greater_than_zero(get(detectors, name, "consecutive"), detectors_path.field(name).field("consecutive"))
    success_rate = as_map(detectors.get("successRate"))
    success_path = detectors_path.field("successRate")
    out += _greater_than_zero(success_rate.get("minimumHosts"), success_path.field("minimumHosts"))
    out += _greater_than_zero(success_rate.get("requestVolume"), success_path.field("requestVolume"))
    out += _check_deviation_factor(success_rate.get("standardDeviationFactor"), success_path.field("standardDeviationFactor"))
    failure = as_map(detectors.get("failurePercentage"))
    failure_path = detectors_path.field("failurePercentage")
    out += _greater_than_zero(failure.get("minimumHosts"), failure_path.field("minimumHosts"))
    out += _greater_than_zero(failure.get("requestVolume"), failure_path.field("requestVolume"))
    out += _uint_percentage(failure.get("threshold"), failure_path.field("threshold"))
    return out


def _check_deviation_factor(value: Any, path: Path) -> list[Violation]:
    if value is None:
        return []
    number = int_or_decimal_string(value)
    if number is None:
        return [Violation(path, 'invalid number; write an integer or a decimal in quotes, like "1.9"')] if isinstance(value, str) else []
    if number <= 0:
        return [Violation(path, _GREATER_THAN_ZERO)]
    return []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _greater_than_zero(value: Any, path: Path) -> list[Violation]:
    number = _int(value)
    if number is not None and number <= 0:
        return [Violation(path, _GREATER_THAN_ZERO)]
    return []


def _uint_percentage(value: Any, path: Path) -> list[Violation]:
    number = _int(value)
    if number is not None and number > 100:
        return [Violation(path, _UINT_PERCENTAGE)]
    return []


def _deprecations(spec: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    if as_list(spec.get("from")):
        out.append(Violation(SPEC.field("from"), "'from' is deprecated; use 'rules' instead", "warning"))
    out += deprecated_top_level_kind(spec, TOP_LEVEL_KINDS)
    return out


KIND = Kind(name="MeshCircuitBreaker", policy=True, short_name="mcb", validate=validate)
