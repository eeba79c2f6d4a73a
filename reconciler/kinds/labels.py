"""Labels of the control plane's own (`reconciler.io/...`) that a resource may carry.

They are checked when a commit is validated and read again when proxies are built, so they
live here, below both: `reconciler.mesh.shape` imports them.
"""

from __future__ import annotations

__all__ = ["SHAPE_LABEL", "SHAPES"]

SHAPE_LABEL = "reconciler.io/outbound-shape"
"""A Dataplane's choice of outbound shape: one of SHAPES."""
SHAPES = ("kuma", "compact")
