"""A least-recently-used cache bounded three ways: entries, and the values and bytes they
weigh. The git source keeps what blobs and subtrees parsed to in two of them, so however
many commits go by they hold about one commit's worth, and an entry heavier than the whole
cache is not kept (it would flush everything else, then itself)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["BoundedLRU"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedLRU(Generic[K, V]):
    """Least recently used entries, bounded by their number and by their total weight in
    values and in bytes."""

    def __init__(self, size: int, max_nodes: int, max_bytes: int) -> None:
        self.size = size
        self.max_weight = (max_nodes, max_bytes)
        self.nodes = 0
        self.bytes = 0
        self._entries: OrderedDict[K, tuple[V, int, int]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def remember(self, key: K, value: V, nodes: int, size: int) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.nodes, self.bytes = self.nodes - old[1], self.bytes - old[2]
        max_nodes, max_bytes = self.max_weight
        if nodes > max_nodes or size > max_bytes:
            return  # keeping it would flush everything else and then itself
        self._entries[key] = (value, nodes, size)
        self.nodes, self.bytes = self.nodes + nodes, self.bytes + size
        while self._entries and (len(self._entries) > self.size or self.nodes > max_nodes or self.bytes > max_bytes):
            _, (_, dropped_nodes, dropped_size) = self._entries.popitem(last=False)
            self.nodes, self.bytes = self.nodes - dropped_nodes, self.bytes - dropped_size

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
