"""MeshProxyPatch: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express."""

from __future__ import annotations

from reconciler.kinds.base import Kind

__all__ = ["KIND"]

KIND = Kind(name="MeshProxyPatch", policy=True, short_name="mpp")
