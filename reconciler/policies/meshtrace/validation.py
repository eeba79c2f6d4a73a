"""MeshTrace: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshTrace turns on distributed tracing for the selected proxies: one backend (Zipkin,
Datadog or OpenTelemetry), sampling rates and custom span tags. Which top-level targetRef
kinds are allowed depends on the policy's role (`kuma.io/policy-role`, `system` when
absent): only system policies may target a MeshGateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.checks import (
    GO_DECIMAL,
    MUST_BE_DEFINED,
    MUST_NOT_BE_DEFINED,
    MUST_NOT_BE_EMPTY,
    as_list,
    as_map,
    enumerate_list,
    get,
)
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.gourl import go_parse_url, is_url
from reconciler.policies.core.otel import check_otel_backend, otel_endpoint_deprecation
from reconciler.policies.core.targetref import check_target_ref, deprecated_top_level_kind, policy_role

__all__ = ["KIND", "validate", "SYSTEM_TOP_LEVEL_KINDS", "TOP_LEVEL_KINDS"]

SPEC = Path.root("spec")

SYSTEM_TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "Dataplane")
"""Top-level kinds of a policy with the `system` role (the default); MeshGateway without listener tags."""
TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset", "Dataplane")
"""Top-level kinds of a producer, consumer or workload-owner policy."""

_INVALID_PORT = "port must be a valid (1-65535)"


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshTrace validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    ref = spec.get("targetRef")
    kinds = SYSTEM_TOP_LEVEL_KINDS if policy_role(resource) == "system" else TOP_LEVEL_KINDS
    out.extend(check_target_ref(ref, SPEC.field("targetRef"), kinds))
    out.extend(_check_conf(as_map(spec.get("default")), SPEC.field("default")))
    out.extend(_deprecations(spec))
    return list(out)


def _check_conf(conf: Mapping[str, Any], path: Path) -> list[Violation]:
    out: list[Violation] = []
    backends = conf.get("backends")
    backends_path = path.field("backends")
    if backends is None:
        out.append(Violation(backends_path, f"{MUST_BE_DEFINED}; use an empty list to turn tracing off"))
    elif len(as_list(backends)) == 1:
        out += _check_backend(as_map(as_list(backends)[0]), backends_path.index(0))
    elif len(as_list(backends)) > 1:
        out.append(Violation(backends_path, "must have zero or one backend defined: Envoy sends traces to a single backend"))
    for tag_path, tag in enumerate_list(conf.get("tags"), path.field("tags")):
        tag = as_map(tag)
        if tag.get("name") == "":
            out.append(Violation(tag_path.field("name"), MUST_NOT_BE_EMPTY))
        if (tag.get("header") is None) == (tag.get("literal") is None):
            out.append(Violation(tag_path, "tag must have only one type defined: header, literal"))
    sampling = as_map(conf.get("sampling"))
    for name in ("client", "random", "overall"):
        if sampling.get(name) is not None:
            out += _check_sampling(sampling[name], path.field("sampling").field(name))
    return out


def _check_backend(backend: Mapping[str, Any], path: Path) -> list[Violation]:
    kind = backend.get("type")
    if kind == "Datadog":
        datadog = backend.get("datadog")
        if datadog is None:
            return [Violation(path.field("datadog"), f"{MUST_BE_DEFINED} when type is Datadog")]
        url = get(datadog, "url")
        return _check_datadog_url(url if isinstance(url, str) else "", path.field("datadog").field("url"))
    if kind == "Zipkin":
        zipkin = backend.get("zipkin")
        if zipkin is None:
            return [Violation(path.field("zipkin"), f"{MUST_BE_DEFINED} when type is Zipkin")]
        url = get(zipkin, "url")
        url_path = path.field("zipkin").field("url")
        if url is None or url == "":
            return [Violation(url_path, MUST_NOT_BE_EMPTY)]
        if isinstance(url, str) and not is_url(url):
            return [Violation(url_path, "must be a valid url, like http://jaeger-collector:9411/api/v2/spans")]
        return []
    if kind == "OpenTelemetry":
        otel = backend.get("openTelemetry")
        if otel is None:
            return [Violation(path.field("openTelemetry"), f"{MUST_BE_DEFINED} when type is OpenTelemetry")]
        return check_otel_backend(as_map(otel), path.field("openTelemetry"))
    return []  # a missing or unknown type is the schema's to report


def _check_datadog_url(url: str, path: Path) -> list[Violation]:
    """The Datadog agent address: http://host:port and nothing else (Kuma's rules, from dd-trace-go)."""
    parsed = go_parse_url(url, request=True)
    if parsed is None:
        return [Violation(path, "must be a valid url, like http://datadog-agent:8126")]
    out: list[Violation] = []
    if parsed.scheme != "http":
        out.append(Violation(path, "scheme must be http"))
    port = parsed.port()
    if port == "":
        out.append(Violation(path, f"port {MUST_BE_DEFINED}"))
    elif not port.isdigit() or not 1 <= int(port) <= 65535:
        out.append(Violation(path, _INVALID_PORT))
    for part, value in (
        ("opaque", parsed.opaque),
        ("user", parsed.user),
        ("path", parsed.path),
        ("query", parsed.raw_query),
        ("fragment", parsed.fragment),
    ):
        if value not in ("", None):
            out.append(Violation(path, f"{part} {MUST_NOT_BE_DEFINED}"))
    return out


def _check_sampling(value: Any, path: Path) -> list[Violation]:
    """A percentage 0-100, as an integer or a decimal string ("60.5")."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return []  # the schema reports the wrong type
    if isinstance(value, str):
        if not GO_DECIMAL.fullmatch(value):
            return [Violation(path, "string is not a number")]
        number = float(value)
    else:
        number = float(value)
    if not 0 <= number <= 100:
        return [Violation(path, "must be between 0 and 100")]
    return []


def _deprecations(spec: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    for path, backend in enumerate_list(get(spec, "default", "backends"), SPEC.field("default").field("backends")):
        out += otel_endpoint_deprecation(get(backend, "openTelemetry"), path.field("openTelemetry"))
    return out + deprecated_top_level_kind(spec, SYSTEM_TOP_LEVEL_KINDS)


KIND = Kind(name="MeshTrace", policy=True, short_name="mtr", validate=validate)
