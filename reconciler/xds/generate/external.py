"""MeshExternalService clusters (filled in by the routing work on external services)."""

from __future__ import annotations

from reconciler.mesh.routing import BackendCluster
from reconciler.policies.plugin import HookContext
from reconciler.xds.resources import XdsResource

__all__ = ["external_resources"]


def external_resources(backend: BackendCluster, ctx: HookContext) -> list[XdsResource]:
    return []
