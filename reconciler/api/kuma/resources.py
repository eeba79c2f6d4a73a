"""Kuma's resource endpoints: `/`, `/meshes`, `/meshes/{mesh}/{plural}[/{name}]`, global kinds."""

from __future__ import annotations

from reconciler.api.backend import ApiBackend
from reconciler.api.server import Route

__all__ = ["resource_routes"]


def resource_routes(cp: ApiBackend) -> list[Route]:
    return []
