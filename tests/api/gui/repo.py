"""What the GUI tests commit: a Mesh-wide MeshTimeout whose connection timeout they change."""

from __future__ import annotations

__all__ = ["timeout_policy"]


def timeout_policy(timeout: str, name: str = "quick") -> str:
    return f"""\
type: MeshTimeout
mesh: default
name: {name}
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        connectionTimeout: {timeout}
"""
