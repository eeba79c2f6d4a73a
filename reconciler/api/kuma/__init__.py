"""Kuma's HTTP API on port 5681, read-only: the paths, JSON shapes, pagination and inspect
endpoints of Kuma v2.14's API server (docs/api.md), served from the applied commit. A write
answers 405 and names the repository and branch to commit to instead.

Order matters: the inspect routes and the fixed `_overview` paths come before the patterns
that would take `_overview` for a resource name.
"""

from __future__ import annotations

from reconciler.api.backend import ApiBackend
from reconciler.api.kuma.inspect import inspect_routes
from reconciler.api.kuma.resources import resource_routes
from reconciler.api.server import Route

__all__ = ["kuma_routes"]


def kuma_routes(cp: ApiBackend) -> list[Route]:
    return [*inspect_routes(cp), *resource_routes(cp)]
