"""What the GUI tests commit: a Mesh-wide MeshTimeout whose connection timeout they change."""

from __future__ import annotations

from tests.support import mesh_timeout

__all__ = ["timeout_policy"]


def timeout_policy(timeout: str, name: str = "quick") -> str:
    return mesh_timeout(name, f"connectionTimeout: {timeout}")
