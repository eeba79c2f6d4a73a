"""The OpenTelemetry backend checks MeshAccessLog, MeshMetric and MeshTrace share (Kuma's
ValidateOtelBackendRefOrEndpoint and ValidateOtelAttributeName)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reconciler.checks import MUST_BE_DEFINED, as_map, get
from reconciler.errors import Path, Violation
from reconciler.policies.core.gourl import split_host_port

__all__ = ["check_otel_attribute_name", "check_otel_backend", "otel_endpoint_deprecation"]


def otel_endpoint_deprecation(otel: Any, path: Path) -> list[Violation]:
    """Warn about an inline collector endpoint (Kuma prefers a MeshOpenTelemetryBackend)."""
    endpoint = get(otel, "endpoint")
    if endpoint not in (None, "") and get(otel, "backendRef") is None:
        message = "openTelemetry.endpoint is deprecated; point openTelemetry.backendRef at a MeshOpenTelemetryBackend instead"
        return [Violation(path.field("endpoint"), message, "warning")]
    return []


def check_otel_backend(otel: Mapping[str, Any], path: Path, *, host_port: bool = False) -> list[Violation]:
    """Exactly one of `endpoint` (host:port, not a URL) and `backendRef` (Kuma's
    ValidateOtelBackendRefOrEndpoint). `host_port` adds MeshMetric's stricter rule that
    the endpoint carries a port."""
    endpoint = otel.get("endpoint")
    ref = otel.get("backendRef")
    has_endpoint = endpoint not in (None, "")
    if has_endpoint and ref is not None:
        return [Violation(path, "openTelemetry must have only one type defined: endpoint, backendRef")]
    if not has_endpoint and ref is None:
        return [Violation(path, "openTelemetry must have exactly one defined: endpoint, backendRef")]
    if ref is not None:
        ref_path = path.field("backendRef")
        out: list[Violation] = []
        if get(ref, "kind") != "MeshOpenTelemetryBackend":
            out.append(Violation(ref_path.field("kind"), '"kind" must be one of ["MeshOpenTelemetryBackend"]'))
        if not as_map(get(ref, "labels")):
            out.append(
                Violation(
                    ref_path, "backendRef must have exactly one defined: labels (the labels that select the MeshOpenTelemetryBackend)"
                )
            )
        return out
    if not isinstance(endpoint, str):
        return []  # the schema reports the wrong type
    if any(c in endpoint for c in "/?#"):
        return [Violation(path.field("endpoint"), "must be in host:port format, not a URL")]
    if host_port and split_host_port(endpoint) is None:
        return [Violation(path.field("endpoint"), "must be in host:port format")]
    return []


_OTEL_ATTRIBUTE_NAME = re.compile(r"[a-z](?:[a-z0-9]|[._][a-z0-9])*")
_OTEL_ATTRIBUTE_NAME_FORMAT = (
    "must start with a lowercase letter, use only lowercase letters, digits, '.' or '_', "
    "avoid consecutive delimiters, and end with a letter or digit"
)


def check_otel_attribute_name(key: Any, path: Path) -> list[Violation]:
    """An OpenTelemetry attribute key: static, lowercase, dotted (Kuma's ValidateOtelAttributeName)."""
    if key is None or key == "":
        return [Violation(path, MUST_BE_DEFINED)]
    if not isinstance(key, str):
        return []  # the schema reports the wrong type
    if "%" in key:
        return [Violation(path, "must be a static OpenTelemetry attribute name; placeholders are only supported in values")]
    if key.startswith("otel."):
        return [Violation(path, "must not use the reserved OpenTelemetry prefix 'otel.'")]
    if not _OTEL_ATTRIBUTE_NAME.fullmatch(key):
        return [Violation(path, _OTEL_ATTRIBUTE_NAME_FORMAT)]
    return []
