"""Kuma's default MeshRetry for a new mesh (pkg/defaults/mesh/meshretry.go):
`mesh-retry-all-<mesh>`, five retries for TCP, HTTP and gRPC. policies/defaults.py adds it
to each mesh."""

from __future__ import annotations

from functools import cache

from reconciler.model import Resource

__all__ = ["default_policies"]


def default_policies(mesh: str) -> list[Resource]:
    """`mesh-retry-all-<mesh>`: Kuma's default retries for every proxy of a new mesh."""
    return list(_default_policies(mesh))


@cache
def _default_policies(mesh: str) -> tuple[Resource, ...]:
    back_off = {"baseInterval": "25ms", "maxInterval": "250ms"}
    retries = {"numRetries": 5, "perTryTimeout": "16s", "backOff": back_off}
    spec = {
        "targetRef": {"kind": "Mesh"},
        "to": [{"targetRef": {"kind": "Mesh"}, "default": {"tcp": {"maxConnectAttempt": 5}, "http": retries, "grpc": retries}}],
    }
    return (Resource.create("MeshRetry", f"mesh-retry-all-{mesh}", spec, mesh=mesh),)
