"""MeshRateLimit: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

The schema covers shapes and types. This module adds which of rules/from/to may be used with
which top-level targetRef (gateways take `to`, sidecars take `rules` or the deprecated `from`),
the targetRef support matrix (by policy role), inbound rule matches, and the limits themselves:
at least one of http/tcp, positive counts, intervals over 50ms.
"""

from __future__ import annotations

from typing import Any

from reconciler.checks import MUST_BE_DEFINED, MUST_NOT_BE_DEFINED, as_list, as_map, enumerate_list, get
from reconciler.durations import parse_duration
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import (
    affects_inbounds,
    check_gateway_scoped_from_to,
    check_match,
    check_target_ref,
    includes_gateways,
    policy_role,
)

__all__ = ["KIND", "validate"]

_TOP_KINDS_SYSTEM = ("Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "MeshHTTPRoute", "Dataplane")
_TOP_KINDS_OTHER_ROLES = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset", "Dataplane")
_FROM_KINDS = ("Mesh",)
_TO_KINDS = ("Mesh",)
_MIN_INTERVAL_SECONDS = 0.05
_TCP_WITH_SPIFFE = "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity"


def validate(resource: Resource) -> list[Violation]:
    """Every Kuma v2.14 MeshRateLimit rule, with paths rooted at the document."""
    spec = as_map(resource.spec)
    root = Path.root("spec")
    out = Violations()
    rules, from_, to = as_list(spec.get("rules")), as_list(spec.get("from")), as_list(spec.get("to"))
    if rules and (to or from_):
        out.add(root, "fields 'to' and 'from' must be empty when 'rules' is defined")
    out.extend(_check_top_target_ref(spec.get("targetRef"), root.field("targetRef"), policy_role(resource), affects_inbounds(spec)))
    if rules and includes_gateways(spec):
        # Inbound rules have no meaning on a gateway, which has no inbound listener of its own.
        out.add(root.field("rules"), f"{MUST_NOT_BE_DEFINED} when the scope includes a Gateway or a MeshHTTPRoute")
    else:
        for path, rule in enumerate_list(rules, root.field("rules")):
            out.extend(_check_rule(as_map(rule), path))
    out.extend(check_gateway_scoped_from_to(spec, root, _FROM_KINDS, _TO_KINDS, _check_conf))
    out.extend(_deprecations(spec, root))
    return list(out)


def _check_top_target_ref(ref: Any, path: Path, role: str, inbound: bool) -> list[Violation]:
    if role == "system":
        return check_target_ref(ref, path, _TOP_KINDS_SYSTEM, gateway_listener_tags_allowed=True, inbound_policy=inbound)
    return check_target_ref(ref, path, _TOP_KINDS_OTHER_ROLES, inbound_policy=inbound)


def _check_rule(rule: Any, path: Path) -> list[Violation]:
    out: list[Violation] = []
    has_spiffe = False
    for match_path, match in enumerate_list(rule.get("matches"), path.field("matches")):
        out += check_match(match, match_path)
        if get(match, "spiffeID") is None and get(match, "sni") is None:
            out.append(Violation(match_path, "must specify at least one of 'spiffeID' or 'sni'"))
        elif get(match, "spiffeID") is not None:
            has_spiffe = True
    default_path = path.field("default")
    if has_spiffe and get(rule, "default", "local", "tcp") is not None:
        # Connection limits are enforced before the client's certificate is known.
        out.append(Violation(default_path.field("local").field("tcp"), _TCP_WITH_SPIFFE))
    out += _check_conf(rule.get("default"), default_path)
    return out


def _check_conf(conf: Any, path: Path) -> list[Violation]:
    local = get(conf, "local")
    path = path.field("local")
    if local is None:
        return [Violation(path, MUST_BE_DEFINED)]
    local = as_map(local)
    http, tcp = local.get("http"), local.get("tcp")
    out: list[Violation] = []
    if http is None and tcp is None:
        out.append(Violation(path, "must have at least one defined: tcp, http"))
    if http is not None:
        out += _check_http(as_map(http), path.field("http"))
    if tcp is not None:
        out += _check_tcp(as_map(tcp), path.field("tcp"))
    return out


def _check_http(http: Any, path: Path) -> list[Violation]:
    if all(http.get(f) is None for f in ("disabled", "requestRate", "onRateLimit")):
        return [Violation(path, "must have at least one defined: disabled, requestRate, onRateLimit")]
    out: list[Violation] = []
    if http.get("requestRate") is not None:
        out += _check_rate(as_map(http.get("requestRate")), path.field("requestRate"))
    status = get(http, "onRateLimit", "status")
    if isinstance(status, int) and not isinstance(status, bool) and status <= 0:
        out.append(Violation(path.field("onRateLimit").field("status"), "must be greater than 0"))
    return out


def _check_tcp(tcp: Any, path: Path) -> list[Violation]:
    if all(tcp.get(f) is None for f in ("disabled", "connectionRate")):
        return [Violation(path, "must have at least one defined: disabled, connectionRate")]
    if tcp.get("connectionRate") is not None:
        return _check_rate(as_map(tcp.get("connectionRate")), path.field("connectionRate"))
    return []


def _check_rate(rate: Any, path: Path) -> list[Violation]:
    out: list[Violation] = []
    num = rate.get("num")
    if num is None or (isinstance(num, int) and not isinstance(num, bool) and num <= 0):
        out.append(Violation(path.field("num"), "must be greater than 0"))
    interval = rate.get("interval")
    seconds = 0.0 if interval is None else parse_duration(interval)
    # Shorter intervals make Envoy's token bucket refill too often to be accurate.
    if seconds is not None and seconds <= _MIN_INTERVAL_SECONDS:
        out.append(Violation(path.field("interval"), "must be greater than: 50ms"))
    return out


# -- deprecations (Kuma returns them as warnings) ------------------------------------------------
def _deprecations(spec: Any, root: Path) -> list[Violation]:
    out: list[Violation] = []
    if as_list(spec.get("from")):
        out.append(Violation(root.field("from"), "'from' field is deprecated, use 'rules' instead", "warning"))
    for section in ("from", "rules", "to"):
        for path, item in enumerate_list(spec.get(section), root.field(section)):
            status = get(item, "default", "local", "http", "onRateLimit", "status")
            if isinstance(status, int) and not isinstance(status, bool) and 0 < status < 400:
                status_path = path.field("default").field("local").field("http").field("onRateLimit").field("status")
                out.append(
                    Violation(status_path, "should be 400 or higher (an error status); Kuma asks to update this configuration", "warning")
                )
    kind = get(spec, "targetRef", "kind")
    kind_path = root.field("targetRef").field("kind")
    if kind in ("MeshService", "MeshServiceSubset", "MeshSubset"):
        out.append(Violation(kind_path, f"{kind} value for 'targetRef.kind' is deprecated, use Dataplane with labels instead", "warning"))
    elif kind == "MeshHTTPRoute":
        out.append(
            Violation(
                kind_path, "MeshHTTPRoute value for 'targetRef.kind' is deprecated, use MeshHTTPRoute in spec.to[].targetRef", "warning"
            )
        )
    return out


KIND = Kind(name="MeshRateLimit", policy=True, short_name="mrl", validate=validate)
