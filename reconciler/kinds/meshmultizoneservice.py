"""MeshMultiZoneService: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express."""

from __future__ import annotations

from reconciler.kinds.base import Kind

__all__ = ["KIND"]

KIND = Kind(name="MeshMultiZoneService", scope="Mesh", flat=False, short_name="mzsvc")
