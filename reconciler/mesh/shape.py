"""Which outbound shape a sidecar gets: Kuma's (one listener per outbound) or the compact one
(one listener holding every outbound address, one filter chain per outbound).

Kuma's shape is the default. The compact one is for proxies with many outbounds, where
Envoy's time goes into applying one listener per outbound (docs/xds.md, "Outbound shapes").
A Dataplane chooses with the label `reconciler.io/outbound-shape` (`kuma` or `compact`);
without it, `serve --compact-outbounds N` gives the compact shape to proxies with at least
N outbounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from reconciler.labels import SHAPE_LABEL, SHAPES

__all__ = ["SHAPE_LABEL", "SHAPES", "Shape", "ShapeChoice", "outbound_shape"]

Shape = Literal["kuma", "compact"]


@dataclass(frozen=True, slots=True)
class ShapeChoice:
    shape: Shape
    reason: str
    """Why, in words a user can act on: the label, the threshold, or the default."""


def outbound_shape(labels: Mapping[str, str], outbounds: int, compact_from: int | None, *, transparent: bool = False) -> ShapeChoice:
    """The label wins; then the threshold; else Kuma's shape. A proxy without outbounds
    has nothing to shape and keeps Kuma's. A transparent proxy always keeps Kuma's: its
    passthrough listener hands each redirected connection to the listener of the original
    destination, so each outbound needs a listener of its own."""
    if transparent:
        return ShapeChoice("kuma", "transparent proxying (the passthrough listener needs one listener per outbound)")
    forced = labels.get(SHAPE_LABEL)
    if forced in SHAPES:
        return ShapeChoice(forced, f"label {SHAPE_LABEL}: {forced}")  # type: ignore[arg-type]
    if compact_from is not None and outbounds and outbounds >= compact_from:
        return ShapeChoice("compact", f"{outbounds} outbounds, at least --compact-outbounds {compact_from}")
    return ShapeChoice("kuma", "the default")
