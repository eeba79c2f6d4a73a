"""Small builders for the contract's JSON Schemas, so that each expectation in contract.py and
contract_kinds.py reads like the part of Kuma's OpenAPI description it was transcribed from.

Only what the spec states is written down: required properties, JSON types, enums and nested
required objects. Properties the spec lists as optional are typed but not required, so an
omitted optional field (Kuma omits empty ones too) is never a failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "Schema",
    "STRING",
    "INTEGER",
    "NUMBER",
    "BOOLEAN",
    "OBJECT",
    "TIME",
    "DURATION",
    "LABELS",
    "KRI",
    "INT_OR_STRING",
    "obj",
    "array",
    "enum",
    "nullable",
    "item",
    "GLOBAL_KINDS",
    "CONDITIONS",
    "SHORT_NAMES",
]

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}
# `format: date-time` in the spec; jsonschema checks formats only with optional packages, so the
# RFC 3339 shape is spelled out as a pattern.
TIME: Schema = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"}
# Kuma's policies write durations as Go duration strings ("10s", "1m30s"): `type: string` in the spec.
DURATION: Schema = STRING
# `additionalProperties: {type: string}`: label and tag maps.
LABELS: Schema = {"type": "object", "additionalProperties": STRING}
# `kri` is `type: string`; its format (kri_<short name>_<mesh>_<zone>_<namespace>_<name>_<section>)
# is Kuma's KRI, described beside the spec in api/openapi/specs/kri.
KRI: Schema = {"type": "string", "pattern": r"^kri_[a-z0-9]+_"}
# `anyOf: [integer, string]` (x-kubernetes-int-or-string).
INT_OR_STRING: Schema = {"anyOf": [INTEGER, STRING]}


def obj(required: Mapping[str, Schema] | None = None, optional: Mapping[str, Schema] | None = None, **extra: Any) -> Schema:
    """An object with these required and optional properties; other properties are allowed
    unless `additionalProperties=False` is passed (where the spec closes the object)."""
    required = dict(required or {})
    schema: Schema = {"type": "object", "properties": {**dict(optional or {}), **required}}
    if required:
        schema["required"] = sorted(required)
    schema.update(extra)
    return schema


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def enum(values: Iterable[Any], type_: str = "string") -> Schema:
    return {"type": type_, "enum": list(values)}


def nullable(schema: Schema) -> Schema:
    """The schema, or JSON null: where Kuma's server writes null for a field the spec types
    without it (a list's `next` on its last page)."""
    return {"anyOf": [schema, {"type": "null"}]}


# Kubernetes-style status conditions, as in several *Item schemas' status.
CONDITIONS: Schema = array(obj({"type": STRING, "status": enum(["True", "False", "Unknown"]), "reason": STRING, "message": STRING}))

# Kinds Kuma serves at the top level (scope Global) rather than under /meshes/{mesh}.
GLOBAL_KINDS = frozenset({"Mesh", "ZoneIngress", "ZoneEgress", "HostnameGenerator"})


# Each kind's short name, the second field of its KRI (Kuma's ResourceTypeDescription.shortName);
# a Secret has none, so Kuma writes no `kri` for it.
SHORT_NAMES: Mapping[str, str] = {
    "Mesh": "m",
    "Dataplane": "dp",
    "MeshGateway": "mgw",
    "ZoneIngress": "zi",
    "ZoneEgress": "ze",
    "HostnameGenerator": "hg",
    "MeshService": "msvc",
    "MeshExternalService": "extsvc",
    "MeshMultiZoneService": "mzsvc",
    "MeshIdentity": "mid",
    "MeshTrust": "mtrust",
    "MeshOpenTelemetryBackend": "motb",
    "Workload": "wl",
    "MeshAccessLog": "mal",
    "MeshCircuitBreaker": "mcb",
    "MeshFaultInjection": "mfi",
    "MeshHTTPRoute": "mhttpr",
    "MeshHealthCheck": "mhc",
    "MeshLoadBalancingStrategy": "mlbs",
    "MeshMetric": "mm",
    "MeshPassthrough": "mp",
    "MeshProxyPatch": "mpp",
    "MeshRateLimit": "mrl",
    "MeshRetry": "mr",
    "MeshTCPRoute": "mtcpr",
    "MeshTLS": "mtls",
    "MeshTimeout": "mt",
    "MeshTrace": "mtr",
    "MeshTrafficPermission": "mtp",
}


def item(
    kind: str,
    spec: Schema | None = None,
    *,
    top: Mapping[str, Schema] | None = None,
    top_required: Mapping[str, Schema] | None = None,
    status: Schema | None = None,
) -> Schema:
    """A resource as Kuma's API answers it: the shared metadata, then `spec` (new-style kinds)
    or the kind's own fields at the top level (`top`, proto kinds: their *Item schemas have no
    `spec` property, so one there means the fields were nested where Kuma does not put them),
    and `status` if it has one."""
    required: dict[str, Schema] = {"type": enum([kind]), "name": STRING, "creationTime": TIME, "modificationTime": TIME}
    if kind in SHORT_NAMES:
        required["kri"] = {"type": "string", "pattern": f"^kri_{SHORT_NAMES[kind]}_"}
    if kind not in GLOBAL_KINDS:
        required["mesh"] = STRING
    optional: dict[str, Schema] = {"labels": LABELS, **(top or {})}
    required.update(top_required or {})
    if spec is not None:
        required["spec"] = spec
    if status is not None:
        optional["status"] = status
    schema = obj(required, optional)
    if spec is None:
        schema["not"] = {"required": ["spec"]}
    return schema
