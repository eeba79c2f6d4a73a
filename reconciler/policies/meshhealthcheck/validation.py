"""MeshHealthCheck: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshHealthCheck makes the selected proxies actively probe the endpoints of the destinations
in `to[]` (over TCP, HTTP or gRPC) and stop sending traffic to the ones that fail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reconciler.checks import MUST_BE_DEFINED, as_map, check_duration_greater_than_zero, check_percentage, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import check_items, check_target_ref, deprecated_top_level_kind

__all__ = ["KIND", "validate", "TOP_LEVEL_KINDS", "TO_KINDS"]

SPEC = Path.root("spec")

TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "Dataplane")
TO_KINDS = ("Mesh", "MeshService", "MeshExternalService", "MeshMultiZoneService")

_POSITIVE_DURATIONS = ("interval", "timeout", "initialJitter", "intervalJitter", "noTrafficInterval")
_POSITIVE_INTEGERS = ("unhealthyThreshold", "healthyThreshold")
# govalidator's IsFilePath, which Kuma uses: an absolute Unix path or a Windows drive path.
_UNIX_PATH = re.compile(r"^(/[^/\x00]*)+/?$")
_WINDOWS_PATH = re.compile(r'^[a-zA-Z]:\\(?:[^\\/:*?"<>|\r\n]+\\)*[^\\/:*?"<>|\r\n]*$')


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshHealthCheck validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    out.extend(check_target_ref(spec.get("targetRef"), SPEC.field("targetRef"), TOP_LEVEL_KINDS, gateway_listener_tags_allowed=True))
    out.extend(check_items(spec, SPEC, "to", TO_KINDS, _check_conf))
    out.extend(_deprecations(spec))
    return list(out)


def _check_conf(conf: Any, path: Path) -> list[Violation]:
    if conf is not None and not isinstance(conf, Mapping):
        return []  # the schema reports the wrong type
    conf = as_map(conf)
    out: list[Violation] = []
    for name in _POSITIVE_DURATIONS:
        out += check_duration_greater_than_zero(conf.get(name), path.field(name))
    for name in _POSITIVE_INTEGERS:
        value = conf.get(name)
        if _is_int(value) and value <= 0:
            out.append(Violation(path.field(name), "must be greater than zero when defined"))
    jitter_percent = conf.get("intervalJitterPercent")
    if _is_int(jitter_percent) and not 0 <= jitter_percent <= 100:
        out.append(Violation(path.field("intervalJitterPercent"), "must be in inclusive range [0, 100]"))
    out += check_percentage(conf.get("healthyPanicThreshold"), path.field("healthyPanicThreshold"))
    log_path = conf.get("eventLogPath")
    if isinstance(log_path, str) and not (_WINDOWS_PATH.fullmatch(log_path) or _UNIX_PATH.fullmatch(log_path)):
        out.append(
            Violation(path.field("eventLogPath"), "must be a valid path when defined: an absolute file path like /tmp/health-check.log")
        )
    http = conf.get("http")
    if isinstance(http, Mapping):
        out += _check_http(http, path.field("http"))
    if http is None and conf.get("tcp") is None and conf.get("grpc") is None:
        # Without a protocol section there is nothing to probe with.
        out.append(Violation(path, "must have at least one defined: http, tcp, grpc"))
    return out


def _check_http(http: Mapping[str, Any], path: Path) -> list[Violation]:
    out: list[Violation] = []
    if http.get("path") == "":
        out.append(Violation(path.field("path"), f"{MUST_BE_DEFINED}: a request path like /health (or leave it out for /)"))
    for item_path, status in enumerate_list(http.get("expectedStatuses"), path.field("expectedStatuses")):
        if _is_int(status) and not 100 <= status <= 599:
            out.append(Violation(item_path, "must be in inclusive range [100, 599]"))
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _deprecations(spec: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    out += deprecated_top_level_kind(spec, TOP_LEVEL_KINDS)
    for path, item in enumerate_list(spec.get("to"), SPEC.field("to")):
        if get(item, "default", "healthyPanicThreshold") is not None:
            out.append(
                Violation(
                    path.field("default").field("healthyPanicThreshold"),
                    "healthyPanicThreshold is deprecated here; set it in a MeshCircuitBreaker (outlierDetection.healthyPanicThreshold) instead",
                    "warning",
                )
            )
    return out


KIND = Kind(name="MeshHealthCheck", policy=True, short_name="mhc", validate=validate)
