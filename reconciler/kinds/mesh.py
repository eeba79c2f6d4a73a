"""Mesh: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A Mesh carries mesh-wide settings at the top level of the document: mTLS certificate
authorities, tracing, logging and metrics backends, routing switches and membership
constraints. The rules here are Kuma's `MeshResource.Validate` plus what Kuma's mesh manager
checks when a Mesh is created: the name length and each CA backend's plugin validation
(skipped when `mtls.skipValidation` is true), because a commit that Kuma refuses to apply
must not pass.

The sections live beside this module: `_mesh_mtls` (CA backends), `_mesh_backends` (logging,
tracing, metrics); `_protojson` reads fields as Kuma's protobuf JSON does, and
`reconciler.gocompat` mirrors the Go parsers Kuma's rules depend on.
"""

from __future__ import annotations

from typing import Any

from reconciler.checks import as_map, check_selector, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.kinds._mesh_backends import check_logging, check_metrics, check_tracing
from reconciler.kinds._mesh_mtls import CA_TYPES, check_mtls
from reconciler.kinds._protojson import tag_map, text
from reconciler.model import Resource

__all__ = ["KIND", "validate", "CA_TYPES"]

ROOT = Path()
_MAX_NAME_LENGTH = 63


def validate(resource: Resource) -> list[Violation]:
    """Kuma's Mesh validator and the checks its mesh manager runs when the Mesh is applied."""
    spec = as_map(resource.spec)
    out = Violations()
    if len(resource.name) > _MAX_NAME_LENGTH:
        out.add(ROOT.field("name"), f"cannot be longer than {_MAX_NAME_LENGTH} characters")
    out.extend(check_mtls(spec.get("mtls"), resource.name))
    out.extend(check_logging(spec.get("logging")))
    out.extend(check_tracing(spec.get("tracing")))
    out.extend(check_metrics(spec.get("metrics")))
    out.extend(_check_constraints(spec.get("constraints")))
    if get(spec, "routing", "zoneEgress") is True and not text(get(spec, "mtls", "enabledBackend")):
        out.add(
            ROOT.field("mtls"), "has to be set when zoneEgress enabled: routing through ZoneEgress needs mTLS (set mtls.enabledBackend)"
        )
    return list(out)


def _check_constraints(constraints: Any) -> list[Violation]:
    path = ROOT.field("constraints").field("dataplaneProxy")
    proxy = get(constraints, "dataplaneProxy")
    out = []
    for field in ("requirements", "restrictions"):
        for rpath, rule in enumerate_list(get(proxy, field), path.field(field)):
            out.extend(check_selector(tag_map(get(rule, "tags")), rpath.field("tags"), require_one=True))
    return out


KIND = Kind(name="Mesh", scope="Global", flat=True, short_name="m", validate=validate)
