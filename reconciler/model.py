"""The values that flow from git to the validator: resources, where they came from, snapshots.

A `Resource` is the normalized (Kuma Universal) form of one YAML document. Its `origin`
remembers the file, the document's lines and the form it was written in, so that a problem
found anywhere downstream can be reported at `file:line` with a pointer into the document
as the user wrote it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.errors import Path, Problem, Violation, escape_pointer_token
from reconciler.frozen import FrozenDict, freeze
from reconciler.types import JSON, ResourceKey

__all__ = ["Origin", "Resource", "Snapshot", "Form", "canonical_json"]

Form = Literal["universal", "kubernetes"]


def canonical_json(value: JSON) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a resource was read: file, document index, first line, and each field's line."""

    file: str
    document: int
    line: int
    form: Form = "universal"
    flat: bool = False
    lines: Mapping[str, int] = field(default_factory=FrozenDict, repr=False)
    mesh_in_labels: bool = False

    def file_pointer(self, pointer: str) -> str:
        """Translate a pointer into the Universal document to one into the file as written."""
        if self.form == "universal" or not pointer:
            return pointer
        head, _, rest = pointer[1:].partition("/")
        tail = "/" + rest if rest else ""
        if head == "name":
            return "/metadata/name"
        if head == "labels":
            if tail == "/kuma.io~1display-name" and "/metadata/labels" + tail not in self.lines:
                return "/metadata/name"  # set from metadata.name with the namespace (the loader)
            return "/metadata/labels" + tail
        if head == "mesh":
            if self.mesh_in_labels:
                return "/metadata/labels/" + escape_pointer_token("kuma.io/mesh")
            return "/mesh"
        if head in ("type",):
            return "/kind"
        if head == "status":  # top-level in both forms, also for the kinds whose spec is flat
            return pointer
        if head == "spec" or self.flat:
            return "/spec" + (tail if head == "spec" else pointer)
        return pointer

    def line_of(self, pointer: str) -> int:
        """The line of the field at `pointer`, or of its nearest ancestor that exists."""
        p = self.file_pointer(pointer)
        while p:
            line = self.lines.get(p)
            if line is not None:
                return line
            p = p.rpartition("/")[0]
        return self.line


_INTERNED_UP_TO = 256
"""Strings of a spec up to this length are interned: keys and tag values repeat in every
document (10,000 Dataplanes hold "kuma.io/service" 110,000 times), one copy is enough."""

_SHARED_LEAVES: dict[tuple[tuple[str, type, Any], ...], FrozenDict] = {}
"""Small mappings of plain values (tags, ports) frozen once and shared by every document that
holds an equal one. Bounded: emptied when it reaches `_SHARED_MAX` (sharing is only a saving)."""
_SHARED_MAX = 20_000
_LEAF_TYPES = (str, int, float, bool, type(None))


def _frozen(value: Any) -> Any:
    """`freeze(value)`, with short strings interned and small leaf mappings shared."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= _INTERNED_UP_TO else value
    if isinstance(value, Mapping):
        items = [(sys.intern(str(k)), _frozen(v)) for k, v in value.items()]
        if len(items) > 8 or not all(type(v) in _LEAF_TYPES for _, v in items):
            return FrozenDict(items)
        # The type is part of the key: {"a": 1} and {"a": True} are equal, and not the same document.
        key = tuple((k, type(v), v) for k, v in items)
        shared = _SHARED_LEAVES.get(key)
        if shared is None:
            if len(_SHARED_LEAVES) >= _SHARED_MAX:
                _SHARED_LEAVES.clear()
            shared = _SHARED_LEAVES[key] = FrozenDict(items)
        return shared
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True, slots=True)
class Resource:
    """One Kuma resource in Universal form.

    For Kuma's proto kinds (Mesh, Dataplane, MeshGateway, ZoneIngress, ZoneEgress, Secret)
    `spec` holds the top-level fields beside type/name/mesh, exactly as Universal YAML
    writes them; for every other kind it is the document's `spec`.

    `status` is the document's top-level `status` as written (None when absent). Kuma's
    control plane writes it; here it is checked and kept, and nothing downstream reads it.
    """

    key: ResourceKey
    spec: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=FrozenDict)
    flat: bool = False
    origin: Origin | None = field(default=None, compare=False, repr=False)
    digest: str = field(default="", compare=False, repr=False)
    status: Mapping[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        type: str,
        name: str,
        spec: Mapping[str, Any],
        *,
        mesh: str = "",
        labels: Mapping[str, str] | None = None,
        flat: bool = False,
        origin: Origin | None = None,
        status: Mapping[str, Any] | None = None,
    ) -> Resource:
        key = ResourceKey(type, mesh, name)
        frozen_spec = _frozen(spec)
        frozen_labels = freeze(labels or {})
        frozen_status = None if status is None else freeze(status)
        hashed: list[Any] = [type, mesh, name, frozen_labels, frozen_spec]
        if frozen_status is not None:  # digests of resources without a status stay what they were
            hashed.append(frozen_status)
        digest = hashlib.sha256(canonical_json(hashed).encode()).hexdigest()
        return cls(key, frozen_spec, frozen_labels, flat, origin, digest, frozen_status)

    @property
    def type(self) -> str:
        return self.key.type

    @property
    def mesh(self) -> str:
        return self.key.mesh

    @property
    def name(self) -> str:
        return self.key.name

    def document(self) -> dict[str, Any]:
        """The Universal YAML document for this resource."""
        doc: dict[str, Any] = {"type": self.type, "name": self.name}
        if self.mesh:
            doc["mesh"] = self.mesh
        if self.labels:
            doc["labels"] = dict(self.labels)
        if self.flat:
            doc.update(self.spec)
        else:
            doc["spec"] = self.spec
        if self.status is not None:
            doc["status"] = self.status
        return doc

    @property
    def spec_root(self) -> Path:
        """Where `spec` lives in the Universal document: `/spec`, or the root for proto kinds."""
        return Path() if self.flat else Path(("spec",))

    def locate(self, violation: Violation) -> Problem:
        pointer = violation.path.pointer
        if self.origin is None:
            return Problem(None, None, self.key, pointer, violation.message, violation.severity)
        return Problem(
            self.origin.file,
            self.origin.line_of(pointer),
            self.key,
            self.origin.file_pointer(pointer),
            violation.message,
            violation.severity,
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything read from one commit (or work tree): resources in file order and the
    problems found while reading (YAML, encoding, size, symlinks)."""

    revision: str | None
    resources: tuple[Resource, ...]
    problems: tuple[Problem, ...] = ()
    files: int = 0

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def by_key(self) -> dict[ResourceKey, Resource]:
        """Resources by identity; on a duplicate the first file wins (validation reports it)."""
        out: dict[ResourceKey, Resource] = {}
        for r in self.resources:
            out.setdefault(r.key, r)
        return out

    def of_type(self, type_: str) -> Iterator[Resource]:
        return (r for r in self.resources if r.type == type_)
