"""Small meshes and accessors shared by the inspection tests."""

from __future__ import annotations

from typing import Any

from reconciler.mesh.model import MeshModel, build_mesh_model
from tests.support import snapshot_of_text

__all__ = ["NO_DEFAULTS", "model_of", "rule_of", "meta"]

NO_DEFAULTS = "type: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\n---\n"
"""A mesh without Kuma's default policies, to prepend to a test's documents."""


def model_of(text: str) -> MeshModel:
    return build_mesh_model(snapshot_of_text(text).resources)


def rule_of(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """The InspectRule of one policy type."""
    return next(r for r in doc["rules"] if r["type"] == kind)


def meta(kind: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Kuma's Meta of a resource of mesh `default`."""
    return {"type": kind, "mesh": "default", "name": name, "labels": labels or {}}
