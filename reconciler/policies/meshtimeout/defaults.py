"""Kuma's default MeshTimeouts for a new mesh (pkg/defaults/mesh/meshtimeout.go).

`mesh-timeout-all-<mesh>` covers sidecars and `mesh-gateways-timeout-all-<mesh>` builtin
gateways. The inbound side (`from`) doubles the outbound timeouts or disables them, so that
the caller's timeout fires first. policies/defaults.py adds them to each mesh.
"""

from __future__ import annotations

from functools import cache

from reconciler.model import Resource

__all__ = ["default_policies"]


def default_policies(mesh: str) -> list[Resource]:
    """`mesh-timeout-all-<mesh>` (sidecars) and `mesh-gateways-timeout-all-<mesh>` (gateways)."""
    return list(_default_policies(mesh))


@cache
def _default_policies(mesh: str) -> tuple[Resource, ...]:
    sidecars = {
        "targetRef": {"kind": "Mesh", "proxyTypes": ["Sidecar"]},
        "from": [
            {
                "targetRef": {"kind": "Mesh"},
                "default": {
                    "connectionTimeout": "10s",
                    "idleTimeout": "2h",
                    "http": {"requestTimeout": "0s", "streamIdleTimeout": "1h", "maxStreamDuration": "0s"},
                },
            }
        ],
        "to": [
            {
                "targetRef": {"kind": "Mesh"},
                "default": {
                    "connectionTimeout": "5s",
                    "idleTimeout": "1h",
                    "http": {"requestTimeout": "15s", "streamIdleTimeout": "30m"},
                },
            }
        ],
    }
    gateways = {
        "targetRef": {"kind": "Mesh", "proxyTypes": ["Gateway"]},
        "from": [
            {
                "targetRef": {"kind": "Mesh"},
                "default": {"idleTimeout": "5m", "http": {"streamIdleTimeout": "5s", "requestHeadersTimeout": "500ms"}},
            }
        ],
        "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1h", "http": {"streamIdleTimeout": "5s"}}}],
    }
    return (
        Resource.create("MeshTimeout", f"mesh-timeout-all-{mesh}", sidecars, mesh=mesh),
        Resource.create("MeshTimeout", f"mesh-gateways-timeout-all-{mesh}", gateways, mesh=mesh),
    )
