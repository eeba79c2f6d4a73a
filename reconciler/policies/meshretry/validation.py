"""MeshRetry: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshRetry says when and how often a proxy retries a failed request to the destinations in
`to[]`, separately for TCP (connection attempts), HTTP and gRPC. Which top-level targetRef
kinds are allowed depends on the policy's role (`kuma.io/policy-role`, `system` when
absent): only system policies may target a MeshGateway or a MeshHTTPRoute.

Kuma reports the conf errors under a `conf` segment that does not exist in the document
(`spec.to[0].default.conf.http`); we point at the field as written (`/spec/to/0/default/http`).

Its effect on Envoy is `envoy.py` beside this module, Kuma's default policies `defaults.py`;
see docs/policies/meshretry.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reconciler.checks import MUST_BE_DEFINED, MUST_NOT_BE_EMPTY, as_map, enumerate_list, get
from reconciler.durations import parse_duration
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import check_items, check_target_ref, deprecated_top_level_kind, policy_role, top_level_kind

__all__ = [
    "KIND",
    "validate",
    "SYSTEM_TOP_LEVEL_KINDS",
    "TOP_LEVEL_KINDS",
    "TO_KINDS",
    "GATEWAY_TO_KINDS",
    "HTTP_RETRY_ON",
    "GRPC_RETRY_ON",
    "HTTP_STATUS_CODES",
]

SPEC = Path.root("spec")

SYSTEM_TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "MeshHTTPRoute", "Dataplane")
"""Top-level kinds of a policy with the `system` role (the default)."""
TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset", "Dataplane")
"""Top-level kinds of a producer, consumer or workload-owner policy."""
TO_KINDS = ("Mesh", "MeshService", "MeshExternalService", "MeshMultiZoneService", "MeshHTTPRoute")
GATEWAY_TO_KINDS = ("Mesh", "MeshExternalService")
"""`to` kinds when the policy targets a MeshGateway or a MeshHTTPRoute."""

HTTP_RETRY_ON = (
    "5xx",
    "GatewayError",
    "Reset",
    "Retriable4xx",
    "ConnectFailure",
    "EnvoyRatelimited",
    "RefusedStream",
    "Http3PostConnectFailure",
    "HttpMethodConnect",
    "HttpMethodDelete",
    "HttpMethodGet",
    "HttpMethodHead",
    "HttpMethodOptions",
    "HttpMethodPatch",
    "HttpMethodPost",
    "HttpMethodPut",
    "HttpMethodTrace",
)
GRPC_RETRY_ON = ("Canceled", "DeadlineExceeded", "Internal", "ResourceExhausted", "Unavailable")
PREDICATES = ("OmitPreviousHosts", "OmitHostsWithTags", "OmitPreviousPriorities")

# Kuma accepts an HTTP status code in retryOn when Go's net/http knows its status text.
HTTP_STATUS_CODES = frozenset(
    [100, 101, 102, 103]
    + [200, 201, 202, 203, 204, 205, 206, 207, 208, 226]
    + [300, 301, 302, 303, 304, 305, 307, 308]
    + list(range(400, 419))
    + [421, 422, 423, 424, 425, 426, 428, 429, 431, 451]
    + [500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511]
)
_GO_ATOI = re.compile(r"^[+-]?[0-9]+$")
_HTTP_RETRY_ON_HINT = (
    "expected 5xx, GatewayError, Reset, Retriable4xx, ConnectFailure, EnvoyRatelimited, RefusedStream, "
    "Http3PostConnectFailure, HttpMethod<Connect|Delete|Get|Head|Options|Patch|Post|Put|Trace> "
    'or a known HTTP status code like "503" (values are case-sensitive)'
)

_HTTP_FIELDS = (
    "numRetries",
    "perTryTimeout",
    "backOff",
    "retryOn",
    "retriableRequestHeaders",
    "retriableResponseHeaders",
    "rateLimitedBackOff",
    "hostSelection",
)
_GRPC_FIELDS = ("numRetries", "perTryTimeout", "backOff", "retryOn", "rateLimitedBackOff")


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshRetry validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    ref = spec.get("targetRef")
    if policy_role(resource) == "system":
        out.extend(check_target_ref(ref, SPEC.field("targetRef"), SYSTEM_TOP_LEVEL_KINDS, gateway_listener_tags_allowed=True))
    else:
        out.extend(check_target_ref(ref, SPEC.field("targetRef"), TOP_LEVEL_KINDS))
    supported = GATEWAY_TO_KINDS if top_level_kind(spec) in ("MeshGateway", "MeshHTTPRoute") else TO_KINDS
    out.extend(check_items(spec, SPEC, "to", supported, _check_conf))
    out.extend(deprecated_top_level_kind(spec, SYSTEM_TOP_LEVEL_KINDS))
    return list(out)


def _check_conf(conf: Any, path: Path) -> list[Violation]:
    if conf is not None and not isinstance(conf, Mapping):
        return []  # the schema reports the wrong type
    conf = as_map(conf)
    tcp, http, grpc = conf.get("tcp"), conf.get("http"), conf.get("grpc")
    if tcp is None and http is None and grpc is None:
        return [Violation(path, "at least one of the 'tcp', 'http', 'grpc' must be specified")]
    out: list[Violation] = []
    if isinstance(tcp, Mapping):
        out += _check_tcp(tcp, path.field("tcp"))
    if isinstance(http, Mapping):
        out += _check_http(http, path.field("http"))
    if isinstance(grpc, Mapping):
        out += _check_grpc(grpc, path.field("grpc"))
    return out


def _check_tcp(tcp: Mapping[str, Any], path: Path) -> list[Violation]:
    attempts = tcp.get("maxConnectAttempt")
    if attempts is None:
        return [Violation(path, f"{MUST_NOT_BE_EMPTY}: set maxConnectAttempt")]
    if attempts == 0 and not isinstance(attempts, bool):
        return [Violation(path.field("maxConnectAttempt"), "must be greater than 0")]
    return []


def _check_http(http: Mapping[str, Any], path: Path) -> list[Violation]:
    out: list[Violation] = []
    # hostSelectionMaxAttempts alone does not count: it only tunes hostSelection.
    if all(http.get(name) is None for name in _HTTP_FIELDS):
        out.append(Violation(path, f"{MUST_NOT_BE_EMPTY}: set at least one of " + ", ".join(_HTTP_FIELDS)))
    out += _check_back_off(http.get("backOff"), path.field("backOff"))
    out += _check_rate_limited_back_off(http.get("rateLimitedBackOff"), path.field("rateLimitedBackOff"))
    for item_path, item in enumerate_list(http.get("retryOn"), path.field("retryOn")):
        if isinstance(item, str) and not _is_http_retry_on(item):
            out.append(Violation(item_path, f"unknown item '{item}'; {_HTTP_RETRY_ON_HINT}"))
    out += _check_host_selection(http.get("hostSelection"), path.field("hostSelection"))
    return out


def _is_http_retry_on(value: str) -> bool:
    if value in HTTP_RETRY_ON:
        return True
    return bool(_GO_ATOI.fullmatch(value)) and int(value) in HTTP_STATUS_CODES


def _check_grpc(grpc: Mapping[str, Any], path: Path) -> list[Violation]:
    out: list[Violation] = []
    if all(grpc.get(name) is None for name in _GRPC_FIELDS):
        out.append(Violation(path, f"{MUST_NOT_BE_EMPTY}: set at least one of " + ", ".join(_GRPC_FIELDS)))
    out += _check_back_off(grpc.get("backOff"), path.field("backOff"))
    out += _check_rate_limited_back_off(grpc.get("rateLimitedBackOff"), path.field("rateLimitedBackOff"))
    for item_path, item in enumerate_list(grpc.get("retryOn"), path.field("retryOn")):
        if item not in GRPC_RETRY_ON:
            out.append(Violation(item_path, f"unknown item '{item}'; use one of {', '.join(GRPC_RETRY_ON)}"))
    return out


def _check_back_off(back_off: Any, path: Path) -> list[Violation]:
    if not isinstance(back_off, Mapping):
        return []
    if back_off.get("baseInterval") is None and back_off.get("maxInterval") is None:
        return [Violation(path, f"{MUST_NOT_BE_EMPTY}: set baseInterval and/or maxInterval")]
    return []


def _check_rate_limited_back_off(back_off: Any, path: Path) -> list[Violation]:
    if not isinstance(back_off, Mapping):
        return []
    out: list[Violation] = []
    max_interval = back_off.get("maxInterval")
    seconds = parse_duration(max_interval)
    if max_interval is not None and seconds is not None and seconds <= 0:
        out.append(Violation(path.field("maxInterval"), "must be defined and greater than zero"))
    headers = back_off.get("resetHeaders")
    if headers is None:
        # Without headers to read the reset time from, rate-limited back-off cannot work.
        out.append(
            Violation(path.field("resetHeaders"), f"{MUST_BE_DEFINED}: list the headers (like retry-after) that carry the reset time")
        )
    for header_path, header in enumerate_list(headers, path.field("resetHeaders")):
        if get(header, "name") == "":
            out.append(Violation(header_path.field("name"), MUST_BE_DEFINED))
    return out


def _check_host_selection(predicates: Any, path: Path) -> list[Violation]:
    out: list[Violation] = []
    priorities_seen = False
    for item_path, predicate in enumerate_list(predicates, path):
        kind = get(predicate, "predicate")
        if kind == "OmitHostsWithTags":
            if get(predicate, "tags") is None:
                out.append(Violation(item_path.field("tags"), f"{MUST_BE_DEFINED} for predicate OmitHostsWithTags"))
        elif kind == "OmitPreviousPriorities":
            if priorities_seen:
                out.append(Violation(item_path.field("predicate"), "OmitPreviousPriorities must only be specified once"))
            frequency = as_map(predicate).get("updateFrequency", 2)  # Kuma's schema default
            if isinstance(frequency, int) and not isinstance(frequency, bool) and frequency <= 0:
                out.append(Violation(item_path.field("updateFrequency"), "must be defined and greater than zero"))
            priorities_seen = True
        elif kind != "OmitPreviousHosts" and isinstance(predicate, Mapping):
            out.append(
                Violation(
                    item_path.field("predicate"),
                    f"unknown predicate type '{'' if kind is None else kind}'; use one of {', '.join(PREDICATES)}",
                )
            )
    return out


KIND = Kind(name="MeshRetry", policy=True, short_name="mr", validate=validate)
