"""MeshFaultInjection: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

The schema covers shapes and types. This module adds which of rules/from/to may be used with
which top-level targetRef (gateways take `to`, sidecars take `rules` or the deprecated `from`),
the targetRef support matrix (by policy role), inbound rule matches, and the faults' values:
HTTP status 100-599, percentages 0-100, non-negative delays, bandwidth in kbps/Mbps/Gbps.

Kuma reports a fault's problems at `http.abort[i]` although the list is `http[i].abort`; this
module reports them where they are in the document (`http[i].abort`).
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.checks import MUST_BE_DEFINED, as_list, as_map, check_percentage, enumerate_list, get
from reconciler.durations import parse_duration
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import affects_inbounds, check_gateway_scoped_from_to, check_match, check_target_ref, policy_role

__all__ = ["KIND", "validate"]

_TOP_KINDS_SYSTEM = ("Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "Dataplane")
_TOP_KINDS_OTHER_ROLES = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset", "Dataplane")
_FROM_KINDS = ("Mesh", "MeshSubset", "MeshServiceSubset", "MeshService")
_TO_KINDS = ("Mesh",)
_BANDWIDTH = re.compile(r"^([0-9]*)[\t\n\f\r ]?([GMk]+bps)$")


def validate(resource: Resource) -> list[Violation]:
    """Every Kuma v2.14 MeshFaultInjection rule, with paths rooted at the document."""
    spec = as_map(resource.spec)
    root = Path.root("spec")
    out = Violations()
    out.extend(_check_top_target_ref(spec.get("targetRef"), root.field("targetRef"), policy_role(resource), affects_inbounds(spec)))
    rules = as_list(spec.get("rules"))
    if rules and as_list(spec.get("from")):
        out.add(root, "field 'from' must be empty when 'rules' is defined")
    for path, rule in enumerate_list(rules, root.field("rules")):
        for match_path, match in enumerate_list(get(rule, "matches"), path.field("matches")):
            out.extend(check_match(match, match_path))
        out.extend(_check_conf(get(rule, "default"), path.field("default")))
    out.extend(check_gateway_scoped_from_to(spec, root, _FROM_KINDS, _TO_KINDS, _check_conf))
    out.extend(_deprecations(spec, root))
    return list(out)


def _check_top_target_ref(ref: Any, path: Path, role: str, inbound: bool) -> list[Violation]:
    if role == "system":
        return check_target_ref(ref, path, _TOP_KINDS_SYSTEM, gateway_listener_tags_allowed=True, inbound_policy=inbound)
    return check_target_ref(ref, path, _TOP_KINDS_OTHER_ROLES, inbound_policy=inbound)


def _check_conf(conf: Any, path: Path) -> list[Violation]:
    out: list[Violation] = []
    for fault_path, fault in enumerate_list(get(conf, "http"), path.field("http")):
        fault = as_map(fault)
        abort = fault.get("abort")
        if abort is not None:
            abort_path = fault_path.field("abort")
            status = get(abort, "httpStatus")
            if status is None or (isinstance(status, int) and not isinstance(status, bool) and not 100 <= status <= 599):
                out.append(Violation(abort_path.field("httpStatus"), "must be in inclusive range [100, 599]"))
            out += check_percentage(get(abort, "percentage"), abort_path.field("percentage"))
        delay = fault.get("delay")
        if delay is not None:
            delay_path = fault_path.field("delay")
            seconds = parse_duration(get(delay, "value"))
            if seconds is not None and seconds < 0:
                out.append(Violation(delay_path.field("value"), "must not be negative when defined"))
            out += check_percentage(get(delay, "percentage"), delay_path.field("percentage"))
        bandwidth = fault.get("responseBandwidth")
        if bandwidth is not None:
            bandwidth_path = fault_path.field("responseBandwidth")
            out += _check_bandwidth(get(bandwidth, "limit"), bandwidth_path.field("limit"))
            out += check_percentage(get(bandwidth, "percentage"), bandwidth_path.field("percentage"))
    return out


def _check_bandwidth(limit: Any, path: Path) -> list[Violation]:
    if limit is None or limit == "":
        return [Violation(path, MUST_BE_DEFINED)]
    if not isinstance(limit, str) or not _BANDWIDTH.match(limit):
        return [Violation(path, "must be in kbps/Mbps/Gbps units, e.g. 500kbps or 10Mbps")]
    return []


# -- deprecations (Kuma returns them as warnings) ------------------------------------------------
def _deprecations(spec: Any, root: Path) -> list[Violation]:
    out: list[Violation] = []
    if as_list(spec.get("from")):
        out.append(Violation(root.field("from"), "'from' field is deprecated, use 'rules' with SPIFFE-based 'matches' instead", "warning"))
    kind = get(spec, "targetRef", "kind")
    if kind in ("MeshService", "MeshServiceSubset", "MeshSubset"):
        out.append(
            Violation(
                root.field("targetRef").field("kind"),
                f"{kind} value for 'targetRef.kind' is deprecated, use Dataplane with labels instead",
                "warning",
            )
        )
    return out


KIND = Kind(name="MeshFaultInjection", policy=True, short_name="mfi", validate=validate)
