"""MeshTimeout: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshTimeout sets connection, idle and HTTP timeouts for outbound traffic (`to[]`), for
inbound traffic (`rules[]`, optionally matched by the client's SPIFFE ID or SNI), or through
the deprecated `from[]` list. Which top-level targetRef kinds are allowed depends on the
policy's role (`kuma.io/policy-role`, `system` when absent): only system policies may target
a MeshGateway or a MeshHTTPRoute.

Its effect on Envoy is `envoy.py` beside this module, Kuma's default policies `defaults.py`;
see docs/policies/meshtimeout.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.checks import (
    MUST_NOT_BE_DEFINED,
    as_list,
    as_map,
    check_duration,
    check_duration_greater_than_zero,
    enumerate_list,
    get,
)
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import (
    affects_inbounds,
    check_items,
    check_match,
    check_target_ref,
    deprecated_top_level_kind,
    policy_role,
    top_level_kind,
)

__all__ = [
    "KIND",
    "validate",
    "SYSTEM_TOP_LEVEL_KINDS",
    "TOP_LEVEL_KINDS",
    "FROM_KINDS",
    "TO_KINDS",
    "GATEWAY_TO_KINDS",
]

SPEC = Path.root("spec")

SYSTEM_TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "Dataplane", "MeshGateway", "MeshService", "MeshServiceSubset", "MeshHTTPRoute")
"""Top-level kinds of a policy with the `system` role (the default)."""
TOP_LEVEL_KINDS = ("Mesh", "Dataplane", "MeshSubset", "MeshService", "MeshServiceSubset")
"""Top-level kinds of a producer, consumer or workload-owner policy."""
FROM_KINDS = ("Mesh",)
TO_KINDS = ("Mesh", "MeshService", "MeshExternalService", "MeshMultiZoneService", "MeshHTTPRoute")
GATEWAY_TO_KINDS = ("Mesh", "MeshExternalService")
"""`to` kinds when the policy targets a MeshGateway or a MeshHTTPRoute."""

_ROUTE_OR_GATEWAY = ("MeshHTTPRoute", "MeshGateway")
_HTTP_FIELDS = ("requestTimeout", "streamIdleTimeout", "maxStreamDuration", "maxConnectionDuration", "requestHeadersTimeout")
# Kuma counts a section as configured only through these four; requestHeadersTimeout alone is not enough.
_HTTP_COUNTED = ("requestTimeout", "streamIdleTimeout", "maxStreamDuration", "maxConnectionDuration")
_NOT_ON_ROUTE = "can't be specified when top-level TargetRef is referencing MeshHTTPRoute"
_NOT_BY_SOURCE = "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity"


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshTimeout validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    out.extend(_check_top_level(resource, spec))
    has_to, has_from, has_rules = (bool(as_list(spec.get(f))) for f in ("to", "from", "rules"))
    if has_rules and (has_to or has_from):
        out.add(SPEC, "fields 'to' and 'from' must be empty when 'rules' is defined")
    if not (has_rules or has_to or has_from):
        out.add(SPEC, "at least one of 'from', 'to' or 'rules' has to be defined")
    top = top_level_kind(spec)
    out.extend(_check_from(spec.get("from"), top))
    supported = GATEWAY_TO_KINDS if top in _ROUTE_OR_GATEWAY else TO_KINDS
    out.extend(check_items(spec, SPEC, "to", supported, lambda conf, path: _check_conf(conf, path, top)))
    for path, rule in enumerate_list(spec.get("rules"), SPEC.field("rules")):
        out.extend(_check_matches(get(rule, "matches"), path.field("matches"), get(rule, "default"), path.field("default")))
        out.extend(_check_conf(get(rule, "default"), path.field("default"), top))
    out.extend(_deprecations(spec))
    return list(out)


def _check_top_level(resource: Resource, spec: Mapping[str, Any]) -> list[Violation]:
    ref = spec.get("targetRef")
    inbound = affects_inbounds(spec)
    if policy_role(resource) == "system":
        return check_target_ref(
            ref, SPEC.field("targetRef"), SYSTEM_TOP_LEVEL_KINDS, gateway_listener_tags_allowed=True, inbound_policy=inbound
        )
    return check_target_ref(ref, SPEC.field("targetRef"), TOP_LEVEL_KINDS, inbound_policy=inbound)


def _check_from(items: Any, top: str) -> list[Violation]:
    path = SPEC.field("from")
    if top in _ROUTE_OR_GATEWAY:
        # Gateways and routes have no inbound side a `from` could configure.
        return [Violation(path, f"{MUST_NOT_BE_DEFINED} when the top-level targetRef is a {top}")] if as_list(items) else []
    out: list[Violation] = []
    for item_path, item in enumerate_list(items, path):
        out += check_target_ref(get(item, "targetRef"), item_path.field("targetRef"), FROM_KINDS)
        out += _check_conf(get(item, "default"), item_path.field("default"), top)
    return out


def _check_matches(matches: Any, path: Path, conf: Any, conf_path: Path) -> list[Violation]:
    out: list[Violation] = []
    has_spiffe_id = False
    for match_path, match in enumerate_list(matches, path):
        out += check_match(match, match_path)  # also reports a missing or unknown spiffeID.type
        if get(match, "spiffeID") is None and get(match, "sni") is None:
            out.append(Violation(match_path, "must specify at least one of 'spiffeID' or 'sni'"))
            continue
        if get(match, "spiffeID") is not None:
            has_spiffe_id = True
    if has_spiffe_id:
        # Connection-level timeouts are set before the client's identity is known.
        conf = as_map(conf)
        for name in ("connectionTimeout", "idleTimeout"):
            if conf.get(name) is not None:
                out.append(Violation(conf_path.field(name), _NOT_BY_SOURCE))
        http = as_map(conf.get("http"))
        for name in ("requestHeadersTimeout", "maxStreamDuration", "maxConnectionDuration"):
            if http.get(name) is not None:
                out.append(Violation(conf_path.field("http").field(name), _NOT_BY_SOURCE))
    return out


def _check_conf(conf: Any, path: Path, top: str) -> list[Violation]:
    """One `default` block (Kuma's validateDefault); a missing block counts as empty."""
    if conf is not None and not isinstance(conf, Mapping):
        return []  # the schema reports the wrong type
    conf = as_map(conf)
    http = conf.get("http")
    if conf.get("connectionTimeout") is None and conf.get("idleTimeout") is None and http is None:
        return [Violation(path, "at least one timeout should be configured: set connectionTimeout, idleTimeout or http")]
    out: list[Violation] = []
    if top == "MeshHTTPRoute":
        # A route only owns its requests; connection timeouts belong to the listener or cluster.
        for name in ("connectionTimeout", "idleTimeout"):
            if conf.get(name) is not None:
                out.append(Violation(path.field(name), _NOT_ON_ROUTE))
        for name in ("maxStreamDuration", "maxConnectionDuration"):
            if get(http, name) is not None:
                out.append(Violation(path.field("http").field(name), _NOT_ON_ROUTE))
    out += check_duration_greater_than_zero(conf.get("connectionTimeout"), path.field("connectionTimeout"))
    out += check_duration(conf.get("idleTimeout"), path.field("idleTimeout"))
    if isinstance(http, Mapping):
        http_path = path.field("http")
        if all(http.get(name) is None for name in _HTTP_COUNTED):
            out.append(
                Violation(
                    http_path,
                    "at least one timeout in this section should be configured: requestTimeout, streamIdleTimeout, maxStreamDuration or maxConnectionDuration",
                )
            )
        for name in _HTTP_FIELDS:
            out += check_duration(http.get(name), http_path.field(name))
    return out


def _deprecations(spec: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    if as_list(spec.get("from")):
        out.append(Violation(SPEC.field("from"), "'from' is deprecated; use 'rules' instead", "warning"))
    out += deprecated_top_level_kind(spec, SYSTEM_TOP_LEVEL_KINDS)
    return out


KIND = Kind(name="MeshTimeout", policy=True, short_name="mt", validate=validate)
