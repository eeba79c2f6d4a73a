"""diff(a, b) → Diff: resources added, removed and changed between two snapshots.

Changed resources carry a field-level diff: each changed leaf (or subtree that was added or
removed) with its JSON pointer in the Universal document and its old and new value.
Lists are compared by position, as JSON merge patches treat them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.errors import Path
from reconciler.model import Resource
from reconciler.types import ResourceKey

__all__ = ["FieldChange", "ResourceChange", "Diff", "diff", "diff_documents"]

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class FieldChange:
    pointer: str
    op: Literal["add", "remove", "replace"]
    old: Any = None
    new: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pointer": self.pointer, "op": self.op}
        if self.op != "add":
            out["old"] = self.old
        if self.op != "remove":
            out["new"] = self.new
        return out


@dataclass(frozen=True, slots=True)
class ResourceChange:
    key: ResourceKey
    old: Resource
    new: Resource
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class Diff:
    added: tuple[Resource, ...]
    removed: tuple[Resource, ...]
    changed: tuple[ResourceChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    @property
    def keys(self) -> frozenset[ResourceKey]:
        """Every identity that differs between the two snapshots."""
        return frozenset([r.key for r in self.added] + [r.key for r in self.removed] + [c.key for c in self.changed])

    def to_json(self) -> dict[str, Any]:
        return {
            "added": [_ref(r) for r in self.added],
            "removed": [_ref(r) for r in self.removed],
            "changed": [{**_ref(c.new), "fields": [f.to_json() for f in c.fields]} for c in self.changed],
        }


def _ref(r: Resource) -> dict[str, Any]:
    out: dict[str, Any] = dict(r.key.to_json())
    if r.origin is not None:
        out["file"] = r.origin.file
        out["line"] = r.origin.line
    return out


def _index(resources: Iterable[Resource]) -> dict[ResourceKey, Resource]:
    out: dict[ResourceKey, Resource] = {}
    for r in resources:
        out.setdefault(r.key, r)
    return out


def diff(old: Iterable[Resource], new: Iterable[Resource]) -> Diff:
    """Compare two sets of resources by identity, then by content."""
    a, b = _index(old), _index(new)
    added = tuple(b[k] for k in sorted(b.keys() - a.keys()))
    removed = tuple(a[k] for k in sorted(a.keys() - b.keys()))
    changed = []
    for k in sorted(a.keys() & b.keys()):
        ra, rb = a[k], b[k]
        if ra.digest and ra.digest == rb.digest:
            continue
        fields = tuple(diff_documents(ra.document(), rb.document()))
        if fields:
            changed.append(ResourceChange(k, ra, rb, fields))
    return Diff(added, removed, tuple(changed))


def diff_documents(old: Any, new: Any, path: Path = Path()) -> Iterator[FieldChange]:  # noqa: B008 (Path is frozen)
    """Field-level changes from `old` to `new` (JSON values), shallowest first."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            o, n = old.get(key, _MISSING), new.get(key, _MISSING)
            child = path.field(str(key))
            if o is _MISSING:
                yield FieldChange(child.pointer, "add", None, n)
            elif n is _MISSING:
                yield FieldChange(child.pointer, "remove", o, None)
            else:
                yield from diff_documents(o, n, child)
        return
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        for i in range(max(len(old), len(new))):
            child = path.index(i)
            if i >= len(old):
                yield FieldChange(child.pointer, "add", None, new[i])
            elif i >= len(new):
                yield FieldChange(child.pointer, "remove", old[i], None)
            else:
                yield from diff_documents(old[i], new[i], child)
        return
    if old != new or type(old) is not type(new):
        yield FieldChange(path.pointer, "replace", old, new)
