"""A dataplane's merged policy rules for its GUI page: Kuma's InspectRules document
(`/meshes/{mesh}/dataplanes/{name}/_rules`), as reconciler.inspection.rules computes it."""

from __future__ import annotations

from typing import Any

from reconciler.inspection.rules import UnknownResource, inspect_rules
from reconciler.mesh.model import MeshModel

__all__ = ["dataplane_rules"]


def dataplane_rules(model: MeshModel, mesh: str, name: str, compact_outbounds: int | None) -> dict[str, Any] | None:
    """None when the served commit has no such dataplane (a proxy that connected without one)."""
    try:
        return inspect_rules(model, mesh, name, compact_outbounds=compact_outbounds)
    except UnknownResource:
        return None
