"""MeshProxyPatch against the compact outbound shape: a patch that names a per-outbound
listener (`outbound:<address>:<port>`) finds no such listener on a compact proxy, whose
outbounds are filter chains of the one listener `outbounds` (reconciler/xds/generate/compact.py).
Kuma would apply the patch; here it is reported where it cannot apply, with what to do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.errors import Path, Problem, Violation
from reconciler.mesh.model import Dataplane
from reconciler.mesh.shape import SHAPE_LABEL, ShapeChoice
from reconciler.policies.core.match import PolicyIndex, matched_policies

__all__ = ["patches_missing_listeners"]

_LISTENER_FIELD = {"listener": "name", "networkFilter": "listenerName", "httpFilter": "listenerName"}


def patches_missing_listeners(dp: Dataplane, shape: ShapeChoice, index: PolicyIndex) -> list[Problem]:
    """A warning at file:line per modification of a MeshProxyPatch selecting `dp` that matches a
    per-outbound listener the compact shape does not have; none in Kuma's shape."""
    if shape.shape != "compact":
        return []
    out = []
    for matched in matched_policies("MeshProxyPatch", dp, index):
        policy = matched.resource
        for path, listener in _outbound_listener_matches(policy.spec, policy.spec_root):
            message = (
                f"matches listener {listener}, which {dp.node_id} does not have: it has the compact outbound shape ({shape.reason}), "
                f"where that outbound is the filter chain {listener} of the listener `outbounds`; "
                f"to patch it, give the Dataplane the label {SHAPE_LABEL}: kuma"
            )
            out.append(policy.locate(Violation(path, message, "warning")))
    return out


def _outbound_listener_matches(spec: Mapping[str, Any], root: Path) -> Iterator[tuple[Path, str]]:
    mods = (spec.get("default") or {}).get("appendModifications") or ()
    for i, mod in enumerate(mods):
        if not isinstance(mod, Mapping):
            continue
        for kind, key in _LISTENER_FIELD.items():
            body = mod.get(kind)
            name = (body.get("match") or {}).get(key) if isinstance(body, Mapping) else None
            if isinstance(name, str) and name.startswith("outbound:"):
                yield root.field("default").field("appendModifications").index(i).field(kind).field("match").field(key), name
