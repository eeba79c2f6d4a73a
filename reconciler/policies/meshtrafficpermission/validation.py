"""MeshTrafficPermission: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshTrafficPermission decides which clients may reach the proxies it selects. Clients are
named either by the legacy `from[]` list (targetRefs with an action) or by `rules[]`, whose
`allow` / `allowWithShadowDeny` / `deny` lists match a client's SPIFFE ID or the SNI it sent.
The two styles cannot be mixed in one policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.checks import MUST_BE_DEFINED, as_list, as_map, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import affects_inbounds, check_match, check_target_ref, deprecated_top_level_kind

__all__ = ["KIND", "validate", "TOP_LEVEL_KINDS", "FROM_KINDS", "ACTIONS"]

SPEC = Path.root("spec")

TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset", "Dataplane")
FROM_KINDS = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset")
ACTIONS = ("Allow", "Deny", "AllowWithShadowDeny")
RULE_LISTS = ("allow", "allowWithShadowDeny", "deny")

# Kuma's TopLevelTargetRefDeprecations: kinds replaced by `Dataplane` + labels.


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshTrafficPermission validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    out.extend(check_target_ref(spec.get("targetRef"), SPEC.field("targetRef"), TOP_LEVEL_KINDS, inbound_policy=affects_inbounds(spec)))
    has_from = bool(as_list(spec.get("from")))
    has_rules = bool(as_list(spec.get("rules")))
    if has_from and has_rules:
        out.add(SPEC, "field 'from' must be empty when 'rules' is defined; keep one of them")
    if not has_from and not has_rules:
        out.add(SPEC, "at least one of 'from' or 'rules' has to be defined")
    for path, rule in enumerate_list(spec.get("rules"), SPEC.field("rules")):
        out.extend(_check_rule(rule, path))
    for path, item in enumerate_list(spec.get("from"), SPEC.field("from")):
        out.extend(_check_from(item, path))
    out.extend(_deprecations(spec))
    return list(out)


def _check_rule(rule: Any, path: Path) -> list[Violation]:
    default = get(rule, "default")
    if not isinstance(default, Mapping):
        return []  # a missing or mistyped `default` is the schema's to report
    out: list[Violation] = []
    if not any(as_list(default.get(name)) for name in RULE_LISTS):
        out.append(Violation(path, "at least one of 'allow', 'allowWithShadowDeny', 'deny' has to be defined"))
    for name in RULE_LISTS:
        for match_path, match in enumerate_list(default.get(name), path.field("default").field(name)):
            out += check_match(match, match_path)
    return out


def _check_from(item: Any, path: Path) -> list[Violation]:
    out = check_target_ref(get(item, "targetRef"), path.field("targetRef"), FROM_KINDS)
    action = get(item, "default", "action")
    if action in (None, ""):
        # A `from` entry without an action neither allows nor denies anything.
        out.append(Violation(path.field("default").field("action"), f"{MUST_BE_DEFINED}: one of Allow, Deny, AllowWithShadowDeny"))
    return out


def _deprecations(spec: Any) -> list[Violation]:
    out: list[Violation] = []
    if as_list(spec.get("from")):
        out.append(
            Violation(
                SPEC.field("from"),
                "'from' is deprecated and will be removed in Kuma 3.0; use 'rules' with SPIFFE ID matches (MeshIdentity) instead",
                "warning",
            )
        )
    for path, item in enumerate_list(spec.get("from"), SPEC.field("from")):
        if get(item, "targetRef", "kind") == "MeshService":
            out.append(
                Violation(
                    path.field("targetRef").field("kind"),
                    "MeshService in 'from[].targetRef.kind' is deprecated; use MeshSubset with the 'kuma.io/service' tag instead",
                    "warning",
                )
            )
    out += deprecated_top_level_kind(spec, TOP_LEVEL_KINDS)
    return out


KIND = Kind(name="MeshTrafficPermission", policy=True, short_name="mtp", validate=validate)
