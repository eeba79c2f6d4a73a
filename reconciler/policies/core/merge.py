"""How policy confs merge: Kuma's JSON merge patch of `default`s, in policy order.

Objects merge key by key, a later scalar or list replaces the earlier one, a null removes the
key, and fields named `append…` (MeshProxyPatch's `appendModifications`) concatenate their
lists. The targetRef engine (core/match.py) decides the order; this module only merges, and
keeps with each merged `Conf` the entries it came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.frozen import FrozenDict, freeze
from reconciler.model import Resource
from reconciler.types import ResourceKey

__all__ = ["Conf", "Contribution", "Entry", "merge_confs", "merged_conf"]

Entry = tuple[Resource, str, Mapping[str, Any]]
"""A policy, the JSON pointer of one of its entries, and that entry's `default`."""


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


@dataclass(frozen=True, slots=True)
class Contribution:
    """One policy entry that contributed to a merged conf: the policy and where in it."""

    policy: ResourceKey
    pointer: str

    def __str__(self) -> str:
        return f"{self.policy} {self.pointer}"


@dataclass(frozen=True, slots=True)
class Conf:
    """A merged `default`, and the entries it was merged from (in merge order)."""

    value: Mapping[str, Any]
    origins: tuple[Contribution, ...]


_merged: dict[tuple[tuple[int, str], ...], tuple[tuple[Resource, ...], Conf]] = {}


def merged_conf(entries: Sequence[Entry]) -> Conf | None:
    """The entries' `default`s merged in order (None: no entry)."""
    if not entries:
        return None
    # Thousands of proxies see the same few entry lists: merge each list once. The key is
    # the entries' identity; the resources are kept with the result so the ids stay theirs.
    key = tuple((id(e[0]), e[1]) for e in entries)
    hit = _merged.get(key)
    if hit is not None and hit[0] == tuple(e[0] for e in entries):  # identical objects: C-speed
        return hit[1]
    conf = Conf(merge_confs([e[2] for e in entries]), tuple(Contribution(e[0].key, e[1]) for e in entries))
    if len(_merged) > 50_000:
        _merged.clear()
    _merged[key] = (tuple(e[0] for e in entries), conf)
    return conf
