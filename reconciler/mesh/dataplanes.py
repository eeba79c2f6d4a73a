"""The server's cache of converted Dataplanes, so that a commit converts only the Dataplane
resources it changed.

Unchanged files give the very same Resource objects commit after commit (the git source caches
what each blob parsed to), so a Dataplane converted from a resource is kept under its node id
with that resource and handed out again while the resource is the same object. Keeping the same
Dataplane objects also makes the comparisons of views/reuse.py identity checks.
"""

from __future__ import annotations

from reconciler.mesh.model import Dataplane, dataplane_from_resource
from reconciler.model import Resource

__all__ = ["DataplaneCache"]


class DataplaneCache:
    """`convert` as `build_mesh_model`'s `dataplane_of`; `settle()` after each build drops what it no longer used."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, bool], tuple[Resource, Dataplane]] = {}
        self._used: dict[tuple[str, bool], tuple[Resource, Dataplane]] = {}

    def convert(self, resource: Resource, registered: bool) -> Dataplane:
        key = (f"{resource.mesh}.{resource.name}", registered)
        kept = self._kept.get(key) or self._used.get(key)
        if kept is not None and kept[0] is resource:
            dp = kept[1]
        else:
            dp = dataplane_from_resource(resource, registered=registered)
        self._used[key] = (resource, dp)
        return dp

    def settle(self) -> None:
        self._kept, self._used = self._used, {}
