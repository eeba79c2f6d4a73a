"""How policy confs merge: Kuma's JSON merge patch of `default`s, in policy order.

Objects merge key by key, a later scalar or list replaces the earlier one, a null removes the
key, and fields named `append…` (MeshProxyPatch's `appendModifications`) concatenate their
lists. The targetRef engine (core/match.py) decides the order; this module only merges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.frozen import FrozenDict, freeze

__all__ = ["merge_confs"]


def _merge(base: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return patch
    out = dict(base) if isinstance(base, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)  # JSON merge patch: null removes
        elif key.startswith("append") and isinstance(value, (list, tuple)):
            out[key] = tuple(out.get(key) or ()) + tuple(value)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def merge_confs(defaults: Sequence[Mapping[str, Any]]) -> FrozenDict:
    """Merge `default` confs in order (later wins), lists replace, `append*` lists concatenate."""
    if len(defaults) == 1 and isinstance(defaults[0], FrozenDict):
        return defaults[0]
    result: Any = {}
    for d in defaults:
        result = _merge(result, d)
    return freeze(result)  # type: ignore[no-any-return]
