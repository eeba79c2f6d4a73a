"""Kuma's default MeshCircuitBreaker for a new mesh (pkg/defaults/mesh/meshcircuitbreaker.go).
policies/defaults.py adds it to each mesh."""

from __future__ import annotations

from reconciler.model import Resource

__all__ = ["default_policies"]


def default_policies(mesh: str) -> list[Resource]:
    """`mesh-circuit-breaker-all-<mesh>`: every outbound gets 1024 connections, pending
    requests and requests, and 3 retries."""
    spec = {
        "targetRef": {"kind": "Mesh"},
        "to": [
            {
                "targetRef": {"kind": "Mesh"},
                "default": {
                    "connectionLimits": {
                        "maxConnections": 1024,
                        "maxPendingRequests": 1024,
                        "maxRequests": 1024,
                        "maxRetries": 3,
                    }
                },
            }
        ],
    }
    return [Resource.create("MeshCircuitBreaker", f"mesh-circuit-breaker-all-{mesh}", spec, mesh=mesh)]
