"""Per-node resource sets with change notification. Knows nothing about gRPC.

The reconciler `set`s each proxy's resources (tagged with the revision they come from); the
xDS server `fetch`es them and awaits `changed` for the node's generation to move. A `set` whose
content equals what is there (same resource versions) changes nothing and wakes nobody.

Thread-safety: a ConfigCache belongs to one asyncio event loop; call its methods from that
loop's thread only (the reconciler hands results over with `loop.call_soon_threadsafe`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from reconciler.xds.resources import ProxyResources

__all__ = ["NodeConfig", "ConfigCache", "ConfigWatcher"]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    resources: ProxyResources
    revision: str
    generation: int


class ConfigWatcher(Protocol):
    """What the xDS server needs from a cache (go-control-plane's ConfigWatcher, in small)."""

    def fetch(self, node_id: str) -> NodeConfig | None: ...

    def changed(self, node_id: str, after_generation: int) -> asyncio.Future[None]:
        """A future done once the node changed after `after_generation` (a newer generation, or
        removed); `fetch` then says what it has. The future may be shared by every stream of the
        node: await it or add callbacks, never cancel it."""
        ...


def _versions(resources: ProxyResources) -> dict[str, dict[str, str]]:
    return {t: {n: r.version for n, r in m.items()} for t, m in resources.by_type.items()}


class ConfigCache:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeConfig] = {}
        self._changed: dict[str, asyncio.Future[None]] = {}
        """Per node waited on, one future for all its streams: a bare future, not an Event with
        its deque of waiters, nor a task per stream (issue 16: memory per connected proxy)."""
        self._generation = 0

    def fetch(self, node_id: str) -> NodeConfig | None:
        return self._nodes.get(node_id)

    def nodes(self) -> Mapping[str, NodeConfig]:
        return dict(self._nodes)

    def set(self, node_id: str, resources: ProxyResources, revision: str) -> bool:
        """Store a node's resources; True when they differ from what it had."""
        current = self._nodes.get(node_id)
        # The versions of what is there are computed again rather than kept: kept, they cost
        # 1.4 KiB per proxy, and they are only read here.
        if current is not None and _versions(current.resources) == _versions(resources):
            if current.revision != revision:
                self._nodes[node_id] = NodeConfig(current.resources, revision, current.generation)
            return False
        self._generation += 1
        self._nodes[node_id] = NodeConfig(resources, revision, self._generation)
        self._notify(node_id)
        return True

    def remove(self, node_id: str) -> None:
        if self._nodes.pop(node_id, None) is not None:
            self._notify(node_id)

    def _notify(self, node_id: str) -> None:
        changed = self._changed.pop(node_id, None)
        if changed is not None and not changed.done():
            changed.set_result(None)

    async def wait(self, node_id: str, after_generation: int) -> NodeConfig | None:
        """Wait for a change of the node (newer generation, or removal); return its config."""
        await self.changed(node_id, after_generation)
        return self._nodes.get(node_id)

    def changed(self, node_id: str, after_generation: int) -> asyncio.Future[None]:
        """Done once the node changed after `after_generation` (newer generation, or removal)."""
        config = self._nodes.get(node_id)
        if config is not None and config.generation > after_generation:
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        changed = self._changed.get(node_id)
        if changed is None or changed.done():
            changed = self._changed[node_id] = asyncio.get_running_loop().create_future()
        return changed
