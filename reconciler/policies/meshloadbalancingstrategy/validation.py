"""MeshLoadBalancingStrategy: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

The schema covers shapes, enums and numeric ranges. This module adds the targetRef support
matrix (which `to` kinds go with which top-level kind, MeshHTTPRoute destinations taking only
hashPolicies), the hash policies' required settings, locality awareness (affinity tag weights,
failover zone lists per type, the failover threshold) and the least-request bias.
"""

from __future__ import annotations

from typing import Any

from reconciler.checks import (
    MUST_BE_DEFINED,
    MUST_NOT_BE_EMPTY,
    MUST_NOT_BE_SET,
    as_list,
    as_map,
    enumerate_list,
    get,
    int_or_decimal_string,
)
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import check_target_ref, top_level_kind

__all__ = ["KIND", "validate"]

_TOP_KINDS = ("Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "Dataplane")
_TO_KINDS = ("Mesh", "MeshService", "MeshMultiZoneService", "MeshHTTPRoute")
_TO_KINDS_GATEWAY = ("Mesh", "MeshService", "MeshMultiZoneService")
_TO_KINDS_GATEWAY_WITH_LB = ("Mesh",)
_DEPRECATED_TOP_KINDS = ("MeshService", "MeshServiceSubset", "MeshSubset")
_ONLY_HASH_POLICIES = "field is not allowed when targetRef.kind is MeshHTTPRoute, only hashPolicies is supported"
# Hash policy type -> the field that carries its settings (SourceIP is the old name of Connection).
_HASH_POLICY_FIELDS = {
    "Header": "header",
    "Cookie": "cookie",
    "QueryParameter": "queryParameter",
    "FilterState": "filterState",
    "Connection": "connection",
    "SourceIP": "connection",
}
# What Kuma's decimal parser (shopspring/decimal) accepts in a string.


def validate(resource: Resource) -> list[Violation]:
    """Every Kuma v2.14 MeshLoadBalancingStrategy rule, with paths rooted at the document."""
    spec = as_map(resource.spec)
    root = Path.root("spec")
    out = Violations()
    out.extend(check_target_ref(spec.get("targetRef"), root.field("targetRef"), _TOP_KINDS, gateway_listener_tags_allowed=True))
    top = top_level_kind(spec)
    for path, entry in enumerate_list(spec.get("to"), root.field("to")):
        out.extend(_check_to(as_map(entry), path, top))
    out.extend(_deprecations(spec))
    return list(out)


def _check_to(entry: Any, path: Path, top: str) -> list[Violation]:
    ref = as_map(entry.get("targetRef"))
    default = as_map(entry.get("default"))
    ref_path = path.field("targetRef")
    if top == "MeshGateway" and default.get("loadBalancer") is not None:
        # A gateway builds one cluster per destination for all its listeners, so the
        # algorithm can only be chosen for the whole mesh.
        out = check_target_ref(
            ref,
            ref_path,
            _TO_KINDS_GATEWAY_WITH_LB,
            supported_error=f"value '{top}' is not supported, only Mesh is allowed if loadBalancer is set",
        )
    else:
        out = check_target_ref(ref, ref_path, _TO_KINDS_GATEWAY if top == "MeshGateway" else _TO_KINDS)
    if ref.get("kind") == "MeshExternalService" and top != "Mesh":
        out.append(
            Violation(
                ref_path.field("kind"),
                "kind MeshExternalService is only allowed with targetRef.kind: Mesh as it is configured on the "
                "Zone Egress and shared by all clients in the mesh",
            )
        )
    out += _check_conf(default, path.field("default"), ref)
    return out


def _check_conf(conf: Any, path: Path, ref: Any) -> list[Violation]:
    out = _check_hash_policies(conf.get("hashPolicies"), path.field("hashPolicies"))
    if ref.get("kind") == "MeshHTTPRoute":
        for field in ("loadBalancer", "localityAwareness"):
            if conf.get(field) is not None:
                out.append(Violation(path.field(field), _ONLY_HASH_POLICIES))
        return out
    lb = conf.get("loadBalancer")
    out += _check_load_balancer(as_map(lb), path.field("loadBalancer"))
    out += _check_locality_awareness(as_map(conf.get("localityAwareness")), path.field("localityAwareness"), ref)
    if conf.get("hashPolicies") is not None:
        for algorithm in ("ringHash", "maglev"):
            if get(lb, algorithm, "hashPolicies") is not None:
                out.append(
                    Violation(
                        path.field("loadBalancer").field(algorithm).field("hashPolicies"),
                        "hashPolicies already specified in the root level",
                    )
                )
    return out


# -- loadBalancer --------------------------------------------------------------------------------
def _check_load_balancer(lb: Any, path: Path) -> list[Violation]:
    kind = lb.get("type")
    if kind in ("RingHash", "Maglev"):
        field = "ringHash" if kind == "RingHash" else "maglev"
        return _check_hash_policies(get(lb, field, "hashPolicies"), path.field(field).field("hashPolicies"))
    if kind == "LeastRequest":
        bias = get(lb, "leastRequest", "activeRequestBias")
        return _check_at_least_zero(bias, path.field("leastRequest").field("activeRequestBias"))
    return []


def _check_at_least_zero(value: Any, path: Path) -> list[Violation]:
    if value is None:
        return []
    number = int_or_decimal_string(value)
    if number is None:
        return [Violation(path, "string must be a valid number")]
    if number < 0:
        return [Violation(path, "must be greater or equal then: 0")]
    return []


def _check_hash_policies(policies: Any, path: Path) -> list[Violation]:
    out: list[Violation] = []
    for policy_path, policy in enumerate_list(policies, path):
        kind = get(policy, "type")
        field = _HASH_POLICY_FIELDS.get(kind) if isinstance(kind, str) else None
        if field is None:
            continue
        settings = get(policy, field)
        if settings is None:
            out.append(Violation(policy_path.field(field), f"{MUST_BE_DEFINED} when type is {kind}"))
        elif field == "cookie":
            cookie_path = get(settings, "path")
            if isinstance(cookie_path, str) and not cookie_path.startswith("/"):
                out.append(Violation(policy_path.field("cookie").field("path"), "must be an absolute path"))
    return out


# -- localityAwareness ---------------------------------------------------------------------------
def _check_locality_awareness(locality: Any, path: Path, ref: Any) -> list[Violation]:
    out = _check_local_zone(locality.get("localZone"), path.field("localZone"))
    cross = locality.get("crossZone")
    if cross is not None:
        out += _check_cross_zone(as_map(cross), path.field("crossZone"), ref)
    return out


def _check_local_zone(local: Any, path: Path) -> list[Violation]:
    tags = as_list(get(local, "affinityTags"))
    out: list[Violation] = []
    weighted = 0
    for tag_path, tag in enumerate_list(tags, path.field("affinityTags")):
        if get(tag, "key") == "":
            out.append(Violation(tag_path.field("key"), MUST_NOT_BE_EMPTY))
        weight = get(tag, "weight")
        if weight is not None:
            weighted += 1
            if isinstance(weight, int) and not isinstance(weight, bool) and weight <= 0:
                out.append(Violation(tag_path.field("weight"), "must be greater than 0"))
    # Weights are relative to each other; a tag without one would have no share.
    if weighted and weighted != len(tags):
        out.append(Violation(path.field("affinityTags"), "all or none affinity tags should have weight"))
    return out


def _check_cross_zone(cross: Any, path: Path, ref: Any) -> list[Violation]:
    out: list[Violation] = []
    if ref.get("kind") == "MeshService" and (ref.get("sectionName") or as_map(ref.get("labels"))):
        # A real MeshService (picked by sectionName or labels) lives in one zone: nothing to fail over to.
        out.append(Violation(path, f"{MUST_NOT_BE_SET}: MeshService traffic is local"))
    for rule_path, rule in enumerate_list(cross.get("failover"), path.field("failover")):
        out += _check_failover(as_map(rule), rule_path)
    threshold = cross.get("failoverThreshold")
    if threshold is not None:
        out += _check_threshold(get(threshold, "percentage"), path.field("failoverThreshold").field("percentage"))
    return out


def _check_failover(rule: Any, path: Path) -> list[Violation]:
    out: list[Violation] = []
    source = rule.get("from")
    if source is not None:
        zones = as_list(get(source, "zones"))
        zones_path = path.field("from").field("zones")
        if not zones:
            out.append(Violation(zones_path, MUST_NOT_BE_EMPTY))
        for zone_path, zone in enumerate_list(zones, zones_path):
            if zone == "":
                out.append(Violation(zone_path, MUST_NOT_BE_EMPTY))
    kind = get(rule, "to", "type")
    zones = as_list(get(rule, "to", "zones"))
    zones_path = path.field("to").field("zones")
    if kind in ("Any", "None"):
        if zones:
            out.append(Violation(zones_path, f"must be empty when type is {kind}"))
    elif kind in ("AnyExcept", "Only"):
        if not zones:
            out.append(Violation(zones_path, f"must not be empty when type is {kind}"))
    else:
        out.append(Violation(path.field("to").field("type"), "unrecognized type; use one of None, Only, Any, AnyExcept"))
    return out


def _check_threshold(value: Any, path: Path) -> list[Violation]:
    if value is None:
        return [Violation(path, MUST_BE_DEFINED)]
    number = int_or_decimal_string(value)
    if number is None:
        return [Violation(path, "string must be a valid number")]
    if not 0 <= number <= 100:
        return [Violation(path, "must be in inclusive range [0.0, 100.0]")]
    if number == 0:
        return [Violation(path, "must be greater than 0")]
    return []


# -- deprecations (Kuma returns them as warnings) ------------------------------------------------
def _deprecations(spec: Any) -> list[Violation]:
    out: list[Violation] = []
    root = Path.root("spec")
    for path, entry in enumerate_list(spec.get("to"), root.field("to")):
        lb = get(entry, "default", "loadBalancer")
        kind = get(lb, "type")
        if kind not in ("RingHash", "Maglev"):
            continue
        field = "ringHash" if kind == "RingHash" else "maglev"
        policies = get(lb, field, "hashPolicies")
        if policies is None:
            continue
        policies_path = path.field("default").field("loadBalancer").field(field).field("hashPolicies")
        out.append(
            Violation(policies_path, f"'{field}.hashPolicies' is deprecated, use 'spec.to[].default.hashPolicies' instead", "warning")
        )
        for policy_path, policy in enumerate_list(policies, policies_path):
            if get(policy, "type") == "SourceIP":
                out.append(Violation(policy_path.field("type"), "SourceIP type is deprecated, use Connection instead", "warning"))
    kind = get(spec, "targetRef", "kind")
    if kind in _DEPRECATED_TOP_KINDS:
        out.append(
            Violation(
                root.field("targetRef").field("kind"),
                f"{kind} value for 'targetRef.kind' is deprecated, use Dataplane with labels instead",
                "warning",
            )
        )
    return out


KIND = Kind(name="MeshLoadBalancingStrategy", policy=True, short_name="mlbs", validate=validate)
