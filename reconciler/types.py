"""Small shared value types and aliases, kept here so modules can import them without cycles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ResourceKey", "JSON", "DEFAULT_MESH"]

JSON = Any
"""A JSON value as loaded from YAML (frozen once it leaves the loader)."""

DEFAULT_MESH = "default"
"""Kuma puts a mesh-scoped resource without `mesh` into the mesh called `default`."""


@dataclass(frozen=True, slots=True, order=True)
class ResourceKey:
    """Identity of a resource: `(type, mesh, name)`; `mesh` is empty for global kinds."""

    type: str
    mesh: str
    name: str

    def __str__(self) -> str:
        return f"{self.type} {self.mesh}/{self.name}" if self.mesh else f"{self.type} {self.name}"

    def to_json(self) -> dict[str, str | None]:
        return {"type": self.type, "mesh": self.mesh or None, "name": self.name}
