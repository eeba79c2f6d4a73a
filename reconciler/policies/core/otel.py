"""What MeshAccessLog, MeshMetric and MeshTrace share about OpenTelemetry backends: the checks
(Kuma's ValidateOtelBackendRefOrEndpoint and ValidateOtelAttributeName) and the resolution of a
`backendRef` to a MeshOpenTelemetryBackend of the proxy's mesh (Kuma v2.14.3,
pkg/plugins/policies/core/xds/otel.go `ResolveOtelBackend` with `EndpointForDirectOtelExport`).

Resolution, as Kuma does it for a proxy that exports straight to the collector:
- the backends whose labels include every label of the ref match; of several, Kuma takes the
  oldest by creation time, which git does not have, so we take the first by name;
- none matches: the backend is skipped (Kuma logs "MeshOpenTelemetryBackend not found,
  skipping backend" and configures nothing for it);
- `endpoint.address` (empty: the proxy's own `networking.address`, standing for Kuma's node
  host IP), `endpoint.port` (default 4317), `endpoint.path` (the base of OTLP/HTTP paths),
  `protocol` (`grpc`, the default, or `http`); OTLP/HTTP to port 443 uses HTTPS.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.checks import MUST_BE_DEFINED, as_map, get
from reconciler.errors import Path, Violation
from reconciler.policies.core.gourl import split_host_port
from reconciler.policies.core.plugin import ProxyFacts

__all__ = [
    "ResolvedOtel",
    "check_otel_attribute_name",
    "check_otel_backend",
    "otel_endpoint_deprecation",
    "resolve_backend_ref",
    "DEFAULT_OTEL_PORT",
    "TRACES_PATH",
    "METRICS_PATH",
    "LOGS_PATH",
]

DEFAULT_OTEL_PORT = 4317
TRACES_PATH = "v1/traces"
METRICS_PATH = "v1/metrics"
LOGS_PATH = "v1/logs"
"""OTLP/HTTP signal paths, joined to the backend's `endpoint.path`."""


@dataclass(frozen=True, slots=True)
class ResolvedOtel:
    """A MeshOpenTelemetryBackend a `backendRef` selects, as the collector Envoy exports to."""

    name: str
    """The MeshOpenTelemetryBackend's name (names sockets and clusters)."""
    host: str
    port: int
    protocol: str
    """`grpc` or `http` (OTLP/HTTP)."""
    path: str = ""
    """`endpoint.path`: the base of OTLP/HTTP paths (empty: `/`)."""

    @property
    def http(self) -> bool:
        return self.protocol == "http"

    @property
    def https(self) -> bool:
        """Kuma's heuristic: OTLP/HTTP to port 443 is HTTPS."""
        return self.http and self.port == 443

    def full_path(self, signal: str) -> str:
        """The OTLP/HTTP path of a signal (TRACES_PATH, ...) under the backend's base path."""
        return posixpath.join(self.path or "/", signal)


def resolve_backend_ref(ref: Any, facts: ProxyFacts | None) -> ResolvedOtel | None:
    """The collector a `backendRef` selects among the proxy's mesh's MeshOpenTelemetryBackends,
    or None (no labels, no proxy, or nothing matches: the backend is skipped)."""
    wanted = ref.get("labels") if isinstance(ref, Mapping) else None
    if not isinstance(wanted, Mapping) or not wanted or facts is None:
        return None
    chosen = next((b for b in facts.otel_backends if all(b.labels.get(k) == v for k, v in wanted.items())), None)
    if chosen is None:
        return None
    endpoint = chosen.spec.get("endpoint")
    if not isinstance(endpoint, Mapping):
        endpoint = {}
    return ResolvedOtel(
        name=chosen.name,
        host=str(endpoint.get("address") or facts.address),
        port=int(endpoint.get("port") or DEFAULT_OTEL_PORT),
        protocol=str(chosen.spec.get("protocol") or "grpc"),
        path=str(endpoint.get("path") or ""),
    )


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
