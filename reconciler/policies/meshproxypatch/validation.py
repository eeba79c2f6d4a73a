"""MeshProxyPatch: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshProxyPatch edits the Envoy configuration Kuma generates for the selected proxies:
it adds, patches or removes clusters, listeners, network filters, HTTP filters and virtual
hosts. Each modification names one resource kind and an operation; the operation decides
which of `match`, `value` (Envoy YAML) and `jsonPatches` (RFC 6902) it takes. Which
top-level targetRef kinds are allowed depends on the policy's role (`kuma.io/policy-role`,
`system` when absent): only system policies may target a MeshGateway.

Kuma decodes every `value` into the Envoy protobuf message it stands for (Cluster,
Listener, Filter, HttpFilter, VirtualHost), rejecting unknown fields, wrong types and
unresolvable `@type`s, and runs Envoy's field constraints on added resources. Without
Envoy's protobuf definitions this module checks less: that the value is a YAML mapping,
and the constraints Envoy puts on the names of added filters and virtual hosts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from reconciler.checks import MUST_BE_DEFINED, MUST_NOT_BE_DEFINED, MUST_NOT_BE_EMPTY, as_list, as_map, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import check_target_ref, deprecated_top_level_kind, policy_role

__all__ = ["KIND", "validate", "SYSTEM_TOP_LEVEL_KINDS", "TOP_LEVEL_KINDS", "MODIFICATIONS"]

SPEC = Path.root("spec")

SYSTEM_TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset", "MeshGateway", "Dataplane")
"""Top-level kinds of a policy with the `system` role (the default); MeshGateway without listener tags."""
TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "Dataplane", "MeshService", "MeshServiceSubset")
"""Top-level kinds of a producer, consumer or workload-owner policy."""
MODIFICATIONS = ("cluster", "listener", "virtualHost", "networkFilter", "httpFilter")

_RESOURCE_OPERATIONS = ("Add", "Patch", "Remove")
_FILTER_OPERATIONS = ("AddFirst", "AddLast", "AddBefore", "AddAfter", "Patch", "Remove")
_ENVOY_TYPE = {
    "cluster": "Cluster",
    "listener": "Listener",
    "virtualHost": "VirtualHost",
    "networkFilter": "Filter",
    "httpFilter": "HttpFilter",
}
_NAME_BEFORE = "must be defined. You need to pick a filter before which this one will be added"
_NAME_AFTER = "must be defined. You need to pick a filter after which this one will be added"
_PATCH_OPS = ("add", "remove", "replace", "move", "copy")
_KIND_OF = {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "a list"}


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshProxyPatch validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    ref = spec.get("targetRef")
    kinds = SYSTEM_TOP_LEVEL_KINDS if policy_role(resource) == "system" else TOP_LEVEL_KINDS
    out.extend(check_target_ref(ref, SPEC.field("targetRef"), kinds))
    mods = get(spec, "default", "appendModifications")
    mods_path = SPEC.field("default").field("appendModifications")
    if mods is None or (isinstance(mods, (list, tuple)) and not mods):
        out.add(mods_path, f"{MUST_NOT_BE_EMPTY}: list at least one modification")
    for path, mod in enumerate_list(mods, mods_path):
        out.extend(_check_modification(as_map(mod), path))
    out.extend(deprecated_top_level_kind(spec, SYSTEM_TOP_LEVEL_KINDS))
    return list(out)


def _check_modification(mod: Mapping[str, Any], path: Path) -> list[Violation]:
    present = [name for name in MODIFICATIONS if mod.get(name) is not None]
    if len(present) != 1:
        return [Violation(path, f"exactly one modification can be defined at a time. Currently, {len(present)} modifications are defined")]
    name = present[0]
    body = as_map(mod[name])
    if name in ("networkFilter", "httpFilter"):
        return _check_filter_mod(name, body, path.field(name))
    return _check_resource_mod(name, body, path.field(name))


def _check_resource_mod(name: str, mod: Mapping[str, Any], path: Path) -> list[Violation]:
    """Cluster, Listener and VirtualHost: Add a new one, Patch or Remove matched ones."""
    operation = mod.get("operation")
    if operation == "Add":
        out: list[Violation] = []
        if name == "virtualHost":
            # A new virtual host goes into matched route configurations, but cannot match itself by name.
            if get(mod, "match", "name") is not None:
                out.append(Violation(path.field("match").field("name"), f"{MUST_NOT_BE_DEFINED} when operation is Add"))
        elif mod.get("match") is not None:
            out.append(Violation(path.field("match"), f"{MUST_NOT_BE_DEFINED} when operation is Add"))
        return out + _check_value(name, mod.get("value"), path.field("value"), patch=False)
    if operation == "Patch":
        return _check_patch(name, mod, path)
    if operation == "Remove":
        return _check_no_value(mod, path)
    return [Violation(path.field("operation"), _available_operations(_RESOURCE_OPERATIONS))]


def _check_filter_mod(name: str, mod: Mapping[str, Any], path: Path) -> list[Violation]:
    """Network and HTTP filters: add one at a position in the chain, Patch or Remove matched ones."""
    operation = mod.get("operation")
    has_name = get(mod, "match", "name") is not None
    name_path = path.field("match").field("name")
    if operation in ("AddFirst", "AddLast"):
        return _check_value(name, mod.get("value"), path.field("value"), patch=False)
    if operation in ("AddBefore", "AddAfter"):
        out = [] if has_name else [Violation(name_path, _NAME_BEFORE if operation == "AddBefore" else _NAME_AFTER)]
        return out + _check_value(name, mod.get("value"), path.field("value"), patch=False)
    if operation == "Patch":
        out = [] if has_name else [Violation(name_path, f"{MUST_BE_DEFINED}: name the filter to patch")]
        return out + _check_patch(name, mod, path)
    if operation == "Remove":
        return _check_no_value(mod, path)
    return [Violation(path.field("operation"), _available_operations(_FILTER_OPERATIONS))]


def _check_no_value(mod: Mapping[str, Any], path: Path) -> list[Violation]:
    if mod.get("value") is not None:
        return [Violation(path.field("value"), f"{MUST_NOT_BE_DEFINED} when operation is Remove")]
    return []


def _check_patch(name: str, mod: Mapping[str, Any], path: Path) -> list[Violation]:
    """A Patch takes exactly one of `value` (merged into the resource) and `jsonPatches`."""
    value, patches = mod.get("value"), mod.get("jsonPatches")
    if value is not None:
        if as_list(patches):
            return [Violation(path, f"{name} must have only one type defined: value, jsonPatches")]
        return _check_value(name, value, path.field("value"), patch=True)
    if as_list(patches):
        return _check_json_patches(patches, path.field("jsonPatches"))
    return [Violation(path, f"{name} must have exactly one defined: value, jsonPatches")]


def _check_value(name: str, value: Any, path: Path, *, patch: bool) -> list[Violation]:
    """`value` holds an Envoy resource as YAML (protobuf JSON field names, camelCase or snake_case)."""
    if value is None:
        return [Violation(path, MUST_BE_DEFINED)]
    if not isinstance(value, str):
        return []  # the schema reports the wrong type
    envoy_type = _ENVOY_TYPE[name]
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as e:
        # Like Kuma, fall back to reading the text as JSON (JSON allows tabs where YAML does not).
        try:
            parsed = json.loads(value)
        except ValueError:
            return [Violation(path, f"native Envoy resource is not valid: {_yaml_problem(e)}")]
    if not isinstance(parsed, Mapping):
        found = _KIND_OF.get(type(parsed), "a scalar") if parsed is not None else "nothing"
        return [
            Violation(
                path, f"native Envoy resource is not valid: expected the fields of an Envoy {envoy_type} as a YAML mapping, found {found}"
            )
        ]
    if patch:
        return []
    return _check_envoy_constraints(name, parsed, path)


def _check_envoy_constraints(name: str, resource: Mapping[str, Any], path: Path) -> list[Violation]:
    """Envoy's own validation rules on the name of an added filter or virtual host."""
    if name not in ("networkFilter", "httpFilter", "virtualHost"):
        return []
    envoy_type = _ENVOY_TYPE[name]
    out: list[Violation] = []
    resource_name = resource.get("name")
    if not isinstance(resource_name, str) or resource_name == "":
        out.append(Violation(path, f"native Envoy resource is not valid: invalid {envoy_type}.Name: value length must be at least 1 runes"))
    if name == "virtualHost":
        domains = resource.get("domains")
        if not isinstance(domains, list) or not domains:
            out.append(
                Violation(path, "native Envoy resource is not valid: invalid VirtualHost.Domains: value must contain at least 1 item(s)")
            )
    return out


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" at line {mark.line + 1}, column {mark.column + 1} of the value" if mark is not None else ""
    return f"YAML syntax error{where}: {problem}"


def _check_json_patches(patches: Any, path: Path) -> list[Violation]:
    """RFC 6902 operations: `from` only for move/copy (and required there), `value` only for
    add/replace (and required there), and the document root cannot be removed."""
    out: list[Violation] = []
    for item_path, patch in enumerate_list(patches, path):
        patch = as_map(patch)
        op = patch.get("op")
        if op not in _PATCH_OPS:
            out.append(Violation(item_path.field("op"), '"op" must be one of ["add", "remove", "replace", "move", "copy"]'))
        if op in ("move", "copy"):
            if patch.get("from") is None:
                out.append(Violation(item_path.field("from"), '"from" must not be empty when "op" is one of ["move", "copy"]'))
        elif patch.get("from") is not None:
            out.append(Violation(item_path.field("from"), '"from" is allowed only when "op" is one of ["move", "copy"]'))
        if op in ("add", "replace"):
            if "value" not in patch:
                out.append(Violation(item_path.field("value"), '"value" must not be empty when "op" is one of ["add", "replace"]'))
        elif "value" in patch:
            out.append(Violation(item_path.field("value"), '"value" is allowed only when "op" is one of ["add", "replace"]'))
        target = patch.get("path")
        if target is None:
            out.append(Violation(item_path.field("path"), MUST_BE_DEFINED))
        elif target in ("", "/") and op == "remove":
            out.append(Violation(item_path.field("path"), "root path cannot be removed"))
    return out


def _available_operations(operations: tuple[str, ...]) -> str:
    return "invalid operation. Available operations: " + ", ".join(f'"{op}"' for op in operations)


KIND = Kind(name="MeshProxyPatch", policy=True, short_name="mpp", validate=validate)
