"""MeshTCPRoute: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

Which targetRef kinds are allowed at the top level (by policy role), in `to` (by top-level
kind) and as backends, and that every rule names at least one backend.
"""

from __future__ import annotations

from typing import Any

from reconciler.checks import MUST_BE_DEFINED, as_list, as_map, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import check_target_ref, policy_role, top_level_kind
from reconciler.policies.meshhttproute.validation import check_backend_ref

__all__ = ["KIND", "validate"]

_TOP_KINDS_SYSTEM = ("Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "Dataplane")
_TOP_KINDS_OTHER_ROLES = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset", "Dataplane")
_TO_KINDS_GATEWAY = ("Mesh",)
_TO_KINDS_SIDECAR = ("MeshService", "MeshExternalService", "MeshMultiZoneService")
_BACKEND_KINDS = ("MeshService", "MeshServiceSubset", "MeshExternalService", "MeshMultiZoneService")
_DEPRECATED_TOP_KINDS = ("MeshService", "MeshServiceSubset", "MeshSubset")


def validate(resource: Resource) -> list[Violation]:
    """Every Kuma v2.14 MeshTCPRoute rule, with paths rooted at the document."""
    spec = as_map(resource.spec)
    root = Path.root("spec")
    out = Violations()
    ref_path = root.field("targetRef")
    if policy_role(resource) == "system":
        out.extend(check_target_ref(spec.get("targetRef"), ref_path, _TOP_KINDS_SYSTEM, gateway_listener_tags_allowed=True))
    else:
        out.extend(check_target_ref(spec.get("targetRef"), ref_path, _TOP_KINDS_OTHER_ROLES))
    top = top_level_kind(spec)
    for path, entry in enumerate_list(spec.get("to"), root.field("to")):
        out.extend(_check_to(entry, path, top))
    kind = get(spec, "targetRef", "kind")
    if kind in _DEPRECATED_TOP_KINDS:
        out.warn(ref_path.field("kind"), f"{kind} value for 'targetRef.kind' is deprecated, use Dataplane with labels instead")
    return list(out)


def _check_to(entry: Any, path: Path, top: str) -> list[Violation]:
    entry = as_map(entry)
    supported = _TO_KINDS_GATEWAY if top == "MeshGateway" else _TO_KINDS_SIDECAR
    out = check_target_ref(entry.get("targetRef") or {}, path.field("targetRef"), supported)
    if "rules" not in entry:
        # Kuma's validator (and its own tests) accept an entry without rules, but the API
        # schema it checks resources against marks the field required: warn, not reject.
        out.append(Violation(path.field("rules"), "Kuma's API schema requires rules; without them this entry routes nothing", "warning"))
    for rule_path, rule in enumerate_list(entry.get("rules"), path.field("rules")):
        backends_path = rule_path.field("default").field("backendRefs")
        backends = get(rule, "default", "backendRefs")
        if not as_list(backends):
            out.append(Violation(backends_path, f"{MUST_BE_DEFINED}: a TCP rule needs at least one backend"))
            continue
        for backend_path, backend in enumerate_list(backends, backends_path):
            out += check_backend_ref(backend, backend_path, _BACKEND_KINDS)
    return out


KIND = Kind(name="MeshTCPRoute", policy=True, short_name="mtcpr", validate=validate)
