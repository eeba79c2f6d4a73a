"""Deeply immutable JSON values.

Resources travel through every stage between git and the socket; freezing their documents
once at load time means no stage can change what another stage sees. `FrozenDict` stays a
`dict` subclass so `json.dumps` and `jsonschema` accept it without adapters; arrays become
tuples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn, cast

__all__ = ["FrozenDict", "freeze", "thaw"]


class FrozenDict(dict[str, Any]):
    """A `dict` that refuses every mutation after construction."""

    __slots__ = ("_hash",)

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("FrozenDict is immutable")

    __setitem__ = _immutable
    __delitem__ = _immutable
    clear = _immutable
    pop = _immutable
    popitem = _immutable
    setdefault = _immutable
    update = _immutable
    __ior__ = _immutable

    def __hash__(self) -> int:  # type: ignore[override]
        try:
            return cast(int, object.__getattribute__(self, "_hash"))
        except AttributeError:
            h = hash(frozenset((k, _hashable(v)) for k, v in self.items()))
            object.__setattr__(self, "_hash", h)
            return h

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def freeze(value: Any) -> Any:
    """Return `value` with every mapping frozen and every list turned into a tuple."""
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping):
        return FrozenDict((str(k), freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Return a mutable deep copy (plain dicts and lists) of a frozen value."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value
