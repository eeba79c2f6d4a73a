"""MeshTLS: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshTLS sets how the selected proxies accept inbound traffic: mTLS mode (Strict or
Permissive), TLS versions and cipher suites, through `rules[]` or the deprecated `from[]`
list. Versions and ciphers are mesh-wide settings: Kuma only accepts them in a policy whose
top-level targetRef is the whole Mesh.

The enums (mode, ciphers, versions) are checked by the schema, as Kuma's own schema does
before its validator runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.checks import as_list, as_map, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import affects_inbounds, check_items, check_target_ref, deprecated_top_level_kind, top_level_kind

__all__ = ["KIND", "validate", "TOP_LEVEL_KINDS", "FROM_KINDS"]

SPEC = Path.root("spec")

TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "Dataplane")
FROM_KINDS = ("Mesh",)
_VERSION_ORDER = {"TLS10": 0, "TLS11": 1, "TLS12": 2, "TLS13": 3}
"""Specific versions, oldest first; TLSAuto leaves the choice to Envoy and is never out of order."""


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshTLS validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    out.extend(check_target_ref(spec.get("targetRef"), SPEC.field("targetRef"), TOP_LEVEL_KINDS, inbound_policy=affects_inbounds(spec)))
    if as_list(spec.get("rules")) and as_list(spec.get("from")):
        out.add(SPEC, "field 'from' must be empty when 'rules' is defined")
    top = top_level_kind(spec)
    for path, rule in enumerate_list(spec.get("rules"), SPEC.field("rules")):
        out.extend(_check_conf(as_map(get(rule, "default")), path.field("default"), top))
    out.extend(check_items(spec, SPEC, "from", FROM_KINDS, lambda conf, path: _check_conf(as_map(conf), path, top)))
    out.extend(_deprecations(spec))
    return list(out)


def _check_conf(conf: Mapping[str, Any], path: Path, top: str) -> list[Violation]:
    out: list[Violation] = []
    if as_list(conf.get("tlsCiphers")) and top != "Mesh":
        out.append(
            Violation(
                path.field("tlsCiphers"), f"tlsCiphers can only be defined with top level targetRef kind: Mesh (this policy targets {top})"
            )
        )
    version = conf.get("tlsVersion")
    if version is not None:
        if top != "Mesh":
            out.append(
                Violation(
                    path.field("tlsVersion"),
                    f"tlsVersion can only be defined with top level targetRef kind: Mesh (this policy targets {top})",
                )
            )
        else:
            out += _check_version(as_map(version), path.field("tlsVersion"))
    return out


def _check_version(version: Mapping[str, Any], path: Path) -> list[Violation]:
    low, high = _VERSION_ORDER.get(str(version.get("min"))), _VERSION_ORDER.get(str(version.get("max")))
    if low is not None and high is not None and low > high:
        return [
            Violation(path.field("min"), f"min version must be lower than max ({version.get('min')} is newer than {version.get('max')})")
        ]
    return []


def _deprecations(spec: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    if as_list(spec.get("from")):
        out.append(Violation(SPEC.field("from"), "'from' is deprecated; use 'rules' instead", "warning"))
    return out + deprecated_top_level_kind(spec, TOP_LEVEL_KINDS)


KIND = Kind(name="MeshTLS", policy=True, short_name="mtls", validate=validate)
