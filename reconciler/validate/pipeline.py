"""validate(snapshot) → Report: every problem in a snapshot, in one pass.

Per resource: name/mesh rules, the kind's JSON Schema, then the kind's semantic checks.
Across resources: duplicate identities and missing meshes. Per-resource results depend only
on the resource, so `ResourceValidator` memoizes them by content: re-validating the next
commit only pays for the documents that changed.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.errors import Path, Problem, Violation
from reconciler.kinds import get_kind
from reconciler.model import Resource, Snapshot
from reconciler.validate.cross import duplicate_problems, missing_mesh_problems, missing_secret_problems
from reconciler.validate.meta import meta_violations
from reconciler.validate.schema import schema_violations

__all__ = ["Report", "ResourceValidator", "validate", "validate_resource"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of validating one snapshot."""

    revision: str | None
    resources: int
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.is_error)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.is_error)

    @property
    def valid(self) -> bool:
        return not any(p.is_error for p in self.problems)


def _covered(path: Path, flagged: set[tuple[str | int, ...]]) -> bool:
    parts = path.parts
    return any(parts[:n] in flagged for n in range(len(parts) + 1))


def validate_resource(resource: Resource) -> tuple[Problem, ...]:
    """All problems of one resource on its own (no cross-resource checks)."""
    kind = get_kind(resource.type)
    violations: list[Violation] = list(meta_violations(resource))
    if kind is None:  # the loader only builds known kinds; this guards hand-made resources
        violations.append(Violation(Path.root("type"), f'unknown type "{resource.type}"'))
        return tuple(resource.locate(v) for v in violations)
    schema = schema_violations(resource.type, resource.document())
    violations.extend(schema)
    # Semantic checks still run when the schema complained, so that one pass reports as much
    # as possible; they skip what the schema already reported at the same place.
    flagged = {v.path.parts for v in schema}
    try:
        semantic = list(kind.validate(resource))
    except Exception as e:  # a validator bug must reject the commit with a message, not crash serving
        if schema:
            semantic = []
        else:
            log.exception("validator failed", extra={"resource": str(resource.key)})
            semantic = [Violation(Path(), f"internal error while validating {resource.type}: {type(e).__name__}: {e}")]
    violations.extend(v for v in semantic if not _covered(v.path, flagged))
    return tuple(resource.locate(v) for v in _dedupe(violations))


def _dedupe(violations: Iterable[Violation]) -> list[Violation]:
    seen: set[tuple[str, str]] = set()
    out = []
    for v in violations:
        k = (v.path.pointer, v.message)
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


class ResourceValidator:
    """`validate_resource` with a bounded memo keyed by where a document is and what it says."""

    def __init__(self, size: int = 100_000) -> None:
        self._memo: OrderedDict[tuple[str, int, str], tuple[Problem, ...]] = OrderedDict()
        self._size = size
        self.computed = 0

    def __call__(self, resource: Resource) -> tuple[Problem, ...]:
        origin = resource.origin
        if origin is None:
            return validate_resource(resource)
        key = (origin.file, origin.document, resource.digest)
        hit = self._memo.get(key)
        if hit is not None:
            self._memo.move_to_end(key)
            return hit
        result = validate_resource(resource)
        self.computed += 1
        self._memo[key] = result
        while len(self._memo) > self._size:
            self._memo.popitem(last=False)
        return result


def validate(snapshot: Snapshot, resource_validator: ResourceValidator | None = None) -> Report:
    """Every problem in `snapshot`: read problems, per-resource problems, cross-resource ones."""
    check = resource_validator or validate_resource
    problems: list[Problem] = list(snapshot.problems)
    for resource in snapshot.resources:
        problems.extend(check(resource))
    problems.extend(duplicate_problems(snapshot.resources))
    unreadable_meshes = {p.resource.name for p in snapshot.problems if p.resource is not None and p.resource.type == "Mesh"}
    problems.extend(missing_mesh_problems(snapshot.resources, unreadable_meshes))
    problems.extend(missing_secret_problems(snapshot.resources))
    ordered = sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.pointer, p.message))
    return Report(snapshot.revision, len(snapshot.resources), tuple(ordered))
