"""A document's line map (JSON pointer → line), stored compactly.

Every resource keeps the line of each of its fields, so that a problem found anywhere later
is reported at `file:line`. Kept as a dict per document, the line maps of 10,000 Dataplanes
were the largest part of the model's memory: the same pointer strings ("/networking/inbound/0/
port", ...) again in every document, and a hash table each. Documents of the same structure
share one `_Shape` (the pointers, in order, and their positions), and each keeps only its line
numbers, 4 bytes apiece.
"""

from __future__ import annotations

import weakref
from array import array
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["LineMap"]


class _Shape:
    __slots__ = ("keys", "index", "__weakref__")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.index = {k: i for i, k in enumerate(keys)}


_SHAPES: weakref.WeakValueDictionary[tuple[str, ...], _Shape] = weakref.WeakValueDictionary()
"""Shapes in use: one goes away with the last line map that has it."""


class LineMap(Mapping[str, int]):
    """An immutable mapping pointer → line, equal to the dict it was made from."""

    __slots__ = ("_shape", "_lines")

    def __init__(self, lines: Mapping[str, int]) -> None:
        keys = tuple(lines)
        shape = _SHAPES.get(keys)
        if shape is None:
            shape = _SHAPES[keys] = _Shape(keys)
        self._shape = shape
        self._lines = array("L", lines.values())

    def __getitem__(self, pointer: str) -> int:
        return self._lines[self._shape.index[pointer]]

    def get(self, pointer: str, default: Any = None) -> Any:
        i = self._shape.index.get(pointer)
        return default if i is None else self._lines[i]

    def __contains__(self, pointer: object) -> bool:
        return pointer in self._shape.index

    def __iter__(self) -> Iterator[str]:
        return iter(self._shape.keys)

    def __len__(self) -> int:
        return len(self._lines)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LineMap):
            return self._shape is other._shape and self._lines == other._lines
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __hash__(self) -> int:
        return hash((self._shape.keys, self._lines.tobytes()))

    def __repr__(self) -> str:
        return f"LineMap({dict(self.items())!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (LineMap, (dict(self.items()),))
