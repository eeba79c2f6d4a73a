"""Validation of `targetRef` values, shared by every policy (Kuma's mesh.ValidateTargetRef).

Each policy states which kinds it supports at the top level and in `to` / `from` / `rules`;
these functions check a reference against that list and against the per-kind rules on
which fields may be combined, using Kuma's wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from reconciler.checks import (
    MUST_BE_DEFINED,
    MUST_BE_SET,
    MUST_NOT_BE_DEFINED,
    MUST_NOT_BE_SET,
    as_list,
    as_map,
    check_selector,
    check_tags,
    enumerate_list,
    get,
)
from reconciler.errors import Path, Violation
from reconciler.model import Resource

__all__ = [
    "ALL_KINDS",
    "check_target_ref",
    "check_match",
    "check_gateway_scoped_from_to",
    "check_items",
    "deprecated_top_level_kind",
    "includes_gateways",
    "policy_role",
    "affects_inbounds",
    "is_valid_spiffe_id",
    "top_level_kind",
]

ALL_KINDS = (
    "Mesh",
    "MeshSubset",
    "MeshGateway",
    "MeshService",
    "MeshExternalService",
    "MeshMultiZoneService",
    "MeshServiceSubset",
    "MeshHTTPRoute",
    "Dataplane",
)

_NAME = re.compile(r"^[0-9a-z.\-_]*$")
_NAME_MESSAGE = "invalid characters: must consist of lower case alphanumeric characters, '-', '.' and '_'."
POLICY_ROLE_LABEL = "kuma.io/policy-role"


def policy_role(resource: Resource) -> str:
    """Kuma's policy role: `system` unless the `kuma.io/policy-role` label says otherwise."""
    return resource.labels.get(POLICY_ROLE_LABEL) or "system"


def affects_inbounds(spec: Mapping[str, Any]) -> bool:
    """A policy with `rules` or `from` configures inbound traffic."""
    return bool(as_list(spec.get("rules"))) or bool(as_list(spec.get("from")))


def top_level_kind(spec: Mapping[str, Any]) -> str:
    """The top-level targetRef kind; a missing targetRef means the whole mesh."""
    kind = get(spec, "targetRef", "kind")
    return kind if isinstance(kind, str) and kind else "Mesh"


def _set(value: Any) -> bool:
    return value not in (None, "", {}, [], ())


def _disallowed(ref: Mapping[str, Any], path: Path, field: str, kind: str) -> list[Violation]:
    if _set(ref.get(field)):
        return [Violation(path.field(field), f"{MUST_NOT_BE_SET} with kind {kind}")]
    return []


def _check_name(ref: Mapping[str, Any], path: Path) -> list[Violation]:
    name = ref.get("name")
    if isinstance(name, str) and not _NAME.match(name):
        return [Violation(path.field("name"), _NAME_MESSAGE)]
    return []


def _check_proxy_types(ref: Mapping[str, Any], path: Path) -> list[Violation]:
    if "proxyTypes" in ref and ref["proxyTypes"] is not None and len(as_list(ref["proxyTypes"])) == 0:
        return [Violation(path.field("proxyTypes"), "must be undefined or have at least one element")]
    return []


def _name_or_labels(ref: Mapping[str, Any], path: Path, kind: str, *, with_namespace: bool = True) -> list[Violation]:
    out = []
    labels, name, namespace = ref.get("labels"), ref.get("name"), ref.get("namespace")
    if not _set(labels) and not _set(name):
        out.append(Violation(path, f"name or labels must be set when kind is {kind}"))
    if _set(labels) and (_set(name) or (with_namespace and _set(namespace))):
        message = "either labels or name and namespace must be specified" if with_namespace else "either labels or name must be specified"
        out.append(Violation(path.field("labels"), message))
    return out


def check_target_ref(
    ref: Any,
    path: Path,
    supported: Collection[str],
    *,
    gateway_listener_tags_allowed: bool = False,
    inbound_policy: bool = False,
    supported_error: str | None = None,
) -> list[Violation]:
    """Check one targetRef at `path` against the kinds a policy supports there."""
    if ref is None:
        return []
    ref = as_map(ref)
    kind = ref.get("kind")
    if not isinstance(kind, str) or not kind:
        return [Violation(path.field("kind"), MUST_BE_DEFINED)]
    if kind not in supported:
        message = supported_error or f"value '{kind}' is not supported"
        allowed = ", ".join(k for k in ALL_KINDS if k in supported)
        return [Violation(path.field("kind"), f"{message}; supported here: {allowed}")]
    out: list[Violation] = []
    if kind == "Mesh":
        if _set(ref.get("name")):
            out.append(Violation(path.field("name"), f"using name with kind {kind} is not yet supported"))
        for f in ("mesh", "tags", "labels", "namespace", "sectionName"):
            out += _disallowed(ref, path, f, kind)
        out += _check_proxy_types(ref, path)
    elif kind == "Dataplane":
        for f in ("tags", "mesh", "proxyTypes"):
            out += _disallowed(ref, path, f, kind)
        if _set(ref.get("labels")) and (_set(ref.get("name")) or _set(ref.get("namespace"))):
            out.append(Violation(path.field("labels"), "either labels or name and namespace must be specified"))
        if not inbound_policy and _set(ref.get("sectionName")):
            out.append(Violation(path.field("sectionName"), "can only be used with inbound policies"))
    elif kind == "MeshSubset":
        for f in ("name", "mesh"):
            out += _disallowed(ref, path, f, kind)
        out += check_tags(ref.get("tags"), path.field("tags"))
        for f in ("labels", "namespace", "sectionName"):
            out += _disallowed(ref, path, f, kind)
        out += _check_proxy_types(ref, path)
    elif kind == "MeshService":
        out += _check_name(ref, path)
        for f in ("mesh", "tags", "proxyTypes"):
            out += _disallowed(ref, path, f, kind)
        out += _name_or_labels(ref, path, kind)
    elif kind == "MeshHTTPRoute":
        out += _check_name(ref, path)
        for f in ("mesh", "tags", "proxyTypes", "sectionName"):
            out += _disallowed(ref, path, f, kind)
        out += _name_or_labels(ref, path, kind)
    elif kind in ("MeshServiceSubset", "MeshGateway"):
        if not _set(ref.get("name")):
            out.append(Violation(path.field("name"), f"{MUST_BE_SET} when kind is {kind}"))
        out += _check_name(ref, path)
        for f in ("mesh", "proxyTypes"):
            out += _disallowed(ref, path, f, kind)
        out += check_selector(ref.get("tags"), path.field("tags"))
        if kind == "MeshGateway" and _set(ref.get("tags")) and not gateway_listener_tags_allowed:
            out += _disallowed(ref, path, "tags", kind)
        for f in ("labels", "namespace", "sectionName"):
            out += _disallowed(ref, path, f, kind)
    elif kind == "MeshExternalService":
        out += _check_name(ref, path)
        for f in ("mesh", "tags", "proxyTypes"):
            out += _disallowed(ref, path, f, kind)
        out += _name_or_labels(ref, path, kind, with_namespace=False)
        out += _disallowed(ref, path, "sectionName", kind)
    elif kind == "MeshMultiZoneService":
        out += _check_name(ref, path)
        for f in ("mesh", "tags", "proxyTypes"):
            out += _disallowed(ref, path, f, kind)
    return out


# -- inbound `rules[].matches` (spiffeID / sni) ----------------------------------------------
_SPIFFE_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")
_SPIFFE_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


def is_valid_spiffe_id(value: Any) -> str | None:
    """None when `value` is a valid SPIFFE ID, else why not (go-spiffe's rules)."""
    if not isinstance(value, str) or not value:
        return "cannot be empty"
    if not value.startswith("spiffe://"):
        return "scheme is missing or invalid"
    rest = value[len("spiffe://") :]
    domain, slash, path = rest.partition("/")
    if not domain:
        return "trust domain is missing"
    if not _SPIFFE_TRUST_DOMAIN.match(domain):
        return "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
    if slash:
        segments = path.split("/")
        for seg in segments:
            if seg == "":
                return (
                    "path cannot contain empty segments"
                    if seg is not segments[-1] or len(segments) == 1
                    else "path cannot have a trailing slash"
                )
            if seg in (".", ".."):
                return "path cannot contain dot segments"
            if not _SPIFFE_SEGMENT.match(seg):
                return "path segment characters are limited to letters, numbers, dots, dashes, and underscores"
    return None


def check_match(match: Any, path: Path) -> list[Violation]:
    """One entry of an inbound rule's `matches` (Kuma's mesh.ValidateMatch)."""
    match = as_map(match)
    out: list[Violation] = []
    spiffe = match.get("spiffeID")
    if spiffe is not None:
        spiffe = as_map(spiffe)
        stype = spiffe.get("type")
        if stype in (None, ""):
            out.append(Violation(path.field("spiffeID").field("type"), MUST_BE_SET))
        elif stype not in ("Exact", "Prefix"):
            out.append(Violation(path.field("spiffeID").field("type"), f'unrecognized type "{stype}", supported values are: Exact, Prefix'))
        problem = is_valid_spiffe_id(spiffe.get("value"))
        if problem is not None:
            out.append(Violation(path.field("spiffeID"), f"must be a valid Spiffe ID: {problem}"))
    sni = match.get("sni")
    if sni is not None:
        sni = as_map(sni)
        stype = sni.get("type")
        if stype in (None, ""):
            out.append(Violation(path.field("sni").field("type"), MUST_BE_SET))
        elif stype != "Exact":
            out.append(Violation(path.field("sni").field("type"), f'unrecognized type "{stype}", supported values are: Exact'))
        value = sni.get("value")
        if not value:
            out.append(Violation(path.field("sni").field("value"), MUST_BE_SET))
        elif not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", str(value)) or len(str(value)) > 253:
            out.append(Violation(path.field("sni").field("value"), "must be a lowercase RFC 1123 subdomain"))
    return out


_GATEWAY_FROM = (
    f"{MUST_NOT_BE_DEFINED} when the scope includes a Gateway, select only proxyType Sidecar or select only gateways and use spec.to"
)


def includes_gateways(spec: Mapping[str, Any]) -> bool:
    """Whether the top-level targetRef can select gateway proxies (Kuma's IncludesGateways)."""
    ref = as_map(spec.get("targetRef")) or {"kind": top_level_kind(spec)}
    kind = get(ref, "kind")
    if kind in ("MeshGateway", "MeshHTTPRoute"):
        return True
    proxy_types = as_list(get(ref, "proxyTypes"))
    return kind in ("Mesh", "MeshSubset") and (not proxy_types or "Gateway" in proxy_types)


def check_items(
    spec: Mapping[str, Any],
    root: Path,
    section: str,
    kinds: Collection[str],
    check_conf: Callable[[Any, Path], list[Violation]],
) -> list[Violation]:
    """Each item of `to` or `from`: its targetRef among `kinds`, its `default` by `check_conf`."""
    out: list[Violation] = []
    for path, item in enumerate_list(spec.get(section), root.field(section)):
        out += check_target_ref(get(item, "targetRef"), path.field("targetRef"), kinds)
        out += check_conf(get(item, "default"), path.field("default"))
    return out


def check_gateway_scoped_from_to(
    spec: Mapping[str, Any],
    root: Path,
    from_kinds: Collection[str],
    to_kinds: Collection[str],
    check_conf: Callable[[Any, Path], list[Violation]],
) -> list[Violation]:
    """`from` and `to` of a policy whose `to` configures gateways only (MeshFaultInjection, MeshRateLimit).

    Sidecars take `from` (or `rules`); a scope that can include gateways must not, and only
    such a scope may use `to`.
    """
    out: list[Violation] = []
    gateways = includes_gateways(spec)
    from_, to = as_list(spec.get("from")), as_list(spec.get("to"))
    if from_ and gateways:
        out.append(Violation(root.field("from"), _GATEWAY_FROM))
    else:
        out += check_items(spec, root, "from", from_kinds, check_conf)
    if to and not gateways:
        out.append(Violation(root.field("to"), f"{MUST_NOT_BE_DEFINED}: only a top-level targetRef that selects gateways takes `to`"))
    else:
        out += check_items(spec, root, "to", to_kinds, check_conf)
    return out


_REPLACED_BY_DATAPLANE = ("MeshService", "MeshServiceSubset", "MeshSubset")


def deprecated_top_level_kind(spec: Mapping[str, Any], supported: Collection[str] = ALL_KINDS) -> list[Violation]:
    """Warnings for top-level targetRef kinds Kuma deprecates (MeshService & co, MeshHTTPRoute).

    A kind the policy does not support is already an error, so it gets no warning.
    """
    kind = get(spec, "targetRef", "kind")
    if kind not in supported:
        return []
    kind_path = Path.root("spec").field("targetRef").field("kind")
    if kind in _REPLACED_BY_DATAPLANE:
        message = f"{kind} as the top-level targetRef kind is deprecated; select proxies with kind Dataplane and labels instead"
        return [Violation(kind_path, message, "warning")]
    if kind == "MeshHTTPRoute":
        message = "MeshHTTPRoute as the top-level targetRef kind is deprecated; reference the route in spec.to[].targetRef instead"
        return [Violation(kind_path, message, "warning")]
    return []
