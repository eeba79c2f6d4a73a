"""MeshHTTPRoute: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

The schema covers shapes, enums, header-name and hostname formats. This module adds what depends
on other fields: which targetRef kinds are allowed where (by policy role and top-level kind),
path values per match type, duplicate query parameters and header names, filters and the field
each one needs, rewrites of a prefix only under prefix matches, MeshGateway-only features, and
the rules for backendRefs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from reconciler.checks import (
    MUST_BE_DEFINED,
    MUST_NOT_BE_DEFINED,
    MUST_NOT_BE_EMPTY,
    as_list,
    as_map,
    check_dns1123_subdomain,
    enumerate_list,
    get,
)
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import check_target_ref, policy_role, top_level_kind

__all__ = ["KIND", "validate", "check_backend_ref"]

_TOP_KINDS_SYSTEM = ("Mesh", "MeshGateway", "MeshSubset", "MeshService", "MeshServiceSubset", "Dataplane")
_TOP_KINDS_OTHER_ROLES = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset", "Dataplane")
_TO_KINDS_GATEWAY = ("Mesh",)
_TO_KINDS_SIDECAR = ("MeshService", "MeshExternalService", "MeshMultiZoneService")
_BACKEND_KINDS = ("MeshService", "MeshServiceSubset", "MeshExternalService", "MeshMultiZoneService")
_MIRROR_KINDS = ("MeshService", "MeshServiceSubset")
# Kuma names a backend it could not resolve (when converting a Gateway API HTTPRoute) this way;
# the name breaks the naming rules on purpose and Kuma lets it through.
_UNRESOLVED_BACKEND = "kuma.io/unresolved-backend"
_PREFIX_ONLY = "can only appear if all matches match a path prefix"
_DEPRECATED_TOP_KINDS = ("MeshService", "MeshServiceSubset", "MeshSubset")


def validate(resource: Resource) -> list[Violation]:
    """Every Kuma v2.14 MeshHTTPRoute rule, with paths rooted at the document."""
    spec = as_map(resource.spec)
    root = Path.root("spec")
    out = Violations()
    top = top_level_kind(spec)
    out.extend(_check_top_target_ref(spec.get("targetRef"), root.field("targetRef"), policy_role(resource)))
    for path, entry in enumerate_list(spec.get("to"), root.field("to")):
        out.extend(_check_to(entry, path, top))
    out.extend(_deprecations(spec.get("targetRef"), root.field("targetRef").field("kind")))
    return list(out)


def _check_top_target_ref(ref: Any, path: Path, role: str) -> list[Violation]:
    if role == "system":
        return check_target_ref(ref, path, _TOP_KINDS_SYSTEM, gateway_listener_tags_allowed=True)
    return check_target_ref(ref, path, _TOP_KINDS_OTHER_ROLES)


def _check_to(entry: Any, path: Path, top: str) -> list[Violation]:
    entry = as_map(entry)
    out: list[Violation] = []
    supported = _TO_KINDS_GATEWAY if top == "MeshGateway" else _TO_KINDS_SIDECAR
    out += check_target_ref(entry.get("targetRef") or {}, path.field("targetRef"), supported)
    for rule_path, rule in enumerate_list(entry.get("rules"), path.field("rules")):
        out += _check_rule(rule, rule_path, top)
    # Hostnames narrow a route to some of a gateway listener's hostnames; a sidecar has none.
    if top != "MeshGateway" and as_list(entry.get("hostnames")):
        out.append(Violation(path.field("hostnames"), MUST_NOT_BE_DEFINED))
    return out


def _check_rule(rule: Any, path: Path, top: str) -> list[Violation]:
    rule = as_map(rule)
    out: list[Violation] = []
    if "matches" not in rule:
        # Kuma's validator accepts a rule without matches (and its docs show one), but the
        # API schema it checks resources against marks the field required: warn, not reject.
        out.append(
            Violation(
                path.field("matches"),
                "Kuma's API schema requires matches (at least one); add e.g. "
                "`matches: [{path: {type: PathPrefix, value: /}}]` to match every request",
                "warning",
            )
        )
    matches = as_list(rule.get("matches"))
    for match_path, match in enumerate_list(matches, path.field("matches")):
        out += _check_match(match, match_path)
    default = as_map(rule.get("default"))
    default_path = path.field("default")
    out += _check_filters(default.get("filters"), default_path.field("filters"), top, matches)
    out += _check_backend_refs(default.get("backendRefs"), default_path.field("backendRefs"), top, default.get("filters"))
    return out


# -- matches ------------------------------------------------------------------------------------
def _check_match(match: Any, path: Path) -> list[Violation]:
    match = as_map(match)
    out = _check_path_match(match.get("path"), path.field("path"))
    out += _check_query_params(match.get("queryParams"), path.field("queryParams"))
    out += _check_header_matches(match.get("headers"), path.field("headers"))
    return out


def _check_path_match(match: Any, path: Path) -> list[Violation]:
    match = as_map(match)
    value = match.get("value")
    if not isinstance(value, str):
        return []
    kind = match.get("type")
    value_path = path.field("value")
    out: list[Violation] = []
    if kind == "PathPrefix":
        if value == "/":
            return []
        if value.endswith("/"):
            out.append(
                Violation(value_path, "does not need a trailing slash because only a `/`-separated prefix or an entire path is matched")
            )
        if not value.startswith("/"):
            out.append(Violation(value_path, "must be an absolute path"))
    elif kind == "Exact" and not value.startswith("/"):
        out.append(Violation(value_path, "must be an absolute path"))
    return out


def _check_query_params(params: Any, path: Path) -> list[Violation]:
    out: list[Violation] = []
    seen: set[str] = set()
    for param_path, param in enumerate_list(params, path):
        name = get(param, "name")
        if not isinstance(name, str):
            continue
        if name in seen:
            out.append(Violation(param_path.field("name"), f"multiple entries for name {name}"))
        seen.add(name)
    return out


def _check_header_matches(headers: Any, path: Path) -> list[Violation]:
    out: list[Violation] = []
    for header_path, header in enumerate_list(headers, path):
        header = as_map(header)
        kind = header.get("type") or "Exact"
        if kind in ("Present", "Absent") and header.get("value") not in (None, ""):
            out.append(Violation(header_path.field("value"), f"{MUST_NOT_BE_DEFINED} when type is {kind}"))
    return out


# -- filters ------------------------------------------------------------------------------------
_FILTER_FIELDS = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "RequestMirror": "requestMirror",
}


def _any_match_without_prefix(matches: Any) -> bool:
    """True when some match is not a PathPrefix match; no matches at all means prefix `/`."""
    return any(get(m, "path", "type") != "PathPrefix" for m in as_list(matches))


def _check_filters(filters: Any, path: Path, top: str, matches: Any) -> list[Violation]:
    out: list[Violation] = []
    for filter_path, item in enumerate_list(filters, path):
        item = as_map(item)
        kind = item.get("type")
        field = _FILTER_FIELDS.get(kind) if isinstance(kind, str) else None
        if field is None:
            continue  # the schema reports an unknown or missing type
        conf = item.get(field)
        conf_path = filter_path.field(field)
        if conf is None:
            out.append(Violation(conf_path, f"{MUST_BE_DEFINED} when type is {kind}"))
            continue
        conf = as_map(conf)
        if field in ("requestHeaderModifier", "responseHeaderModifier"):
            out += _check_header_modifier(conf, conf_path)
        elif field in ("requestRedirect", "urlRewrite"):
            if get(conf, "path", "replacePrefixMatch") is not None and _any_match_without_prefix(matches):
                out.append(Violation(conf_path.field("path").field("replacePrefixMatch"), _PREFIX_ONLY))
            out += _check_precise_hostname(conf.get("hostname"), conf_path.field("hostname"))
            if field == "urlRewrite" and conf.get("hostToBackendHostname") is True:
                flag_path = conf_path.field("hostToBackendHostname")
                if top != "MeshGateway":
                    out.append(Violation(flag_path, "can only be set with MeshGateway"))
                if conf.get("hostname") is not None:
                    out.append(Violation(flag_path, "cannot be set together with hostname"))
        else:
            backend = conf.get("backendRef")
            if backend is not None:
                out += check_target_ref(backend, conf_path.field("backendRef"), _MIRROR_KINDS)
    return out


def _check_header_modifier(modifier: Mapping[str, Any], path: Path) -> list[Violation]:
    if all(modifier.get(f) is None for f in ("set", "add", "remove")):
        return [Violation(path, "must have at least one defined: set, add, remove")]
    # Only one action per header name: Envoy would otherwise apply them in an unspecified order.
    out: list[Violation] = []
    seen: set[str] = set()
    for action in ("set", "add", "remove"):
        for item_path, item in enumerate_list(modifier.get(action), path.field(action)):
            name = item if action == "remove" else get(item, "name")
            if not isinstance(name, str):
                continue
            if name in seen:
                # `remove` lists bare names; Kuma points at `remove[i].name`, which is `remove[i]` here.
                where = item_path if action == "remove" else item_path.field("name")
                out.append(Violation(where, "duplicate header name"))
            seen.add(name)
    return out


_SLOPPY_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def _is_ip(value: str) -> bool:
    """Like Go's ParseIPSloppy: IPv4 with leading zeros counts too."""
    if _SLOPPY_IPV4.match(value):
        return all(int(part) <= 255 for part in value.split("."))
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _check_precise_hostname(hostname: Any, path: Path) -> list[Violation]:
    if not isinstance(hostname, str):
        return []
    if _is_ip(hostname):
        return [Violation(path, "cannot be an IP address")]
    return check_dns1123_subdomain(hostname, path)


# -- backendRefs --------------------------------------------------------------------------------
def _check_backend_refs(backends: Any, path: Path, top: str, filters: Any) -> list[Violation]:
    out: list[Violation] = []
    # A gateway has no destination of its own to fall back on, except when it answers itself.
    if not as_list(backends) and top == "MeshGateway":  # noqa: SIM102
        if not any(get(f, "type") == "RequestRedirect" for f in as_list(filters)):
            out.append(
                Violation(
                    path,
                    f"{MUST_NOT_BE_EMPTY} when the top-level targetRef is a MeshGateway (unless a RequestRedirect filter answers the request)",
                )
            )
    for backend_path, backend in enumerate_list(backends, path):
        out += check_backend_ref(backend, backend_path, _BACKEND_KINDS, allow_unresolved=True)
    return out


def check_backend_ref(backend: Any, path: Path, supported: tuple[str, ...], *, allow_unresolved: bool = False) -> list[Violation]:
    """A backendRef: a targetRef of a supported kind, with a port for MeshMultiZoneService."""
    backend = as_map(backend)
    found = check_target_ref(backend, path, supported)
    if allow_unresolved and backend.get("name") == _UNRESOLVED_BACKEND:
        found = [v for v in found if v.path != path.field("name")]
    if backend.get("kind") == "MeshMultiZoneService" and backend.get("port") is None:
        found.append(Violation(path.field("port"), f"{MUST_BE_DEFINED} with kind MeshMultiZoneService"))
    return found


# -- deprecations (Kuma returns them as warnings) ----------------------------------------------
def _deprecations(ref: Any, path: Path) -> list[Violation]:
    kind = get(ref, "kind")
    if kind in _DEPRECATED_TOP_KINDS:
        return [Violation(path, f"{kind} value for 'targetRef.kind' is deprecated, use Dataplane with labels instead", "warning")]
    return []


KIND = Kind(name="MeshHTTPRoute", policy=True, short_name="mhttpr", validate=validate)
