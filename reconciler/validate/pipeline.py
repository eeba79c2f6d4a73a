"""validate(snapshot) → Report: every problem in a snapshot, in one pass.

Per resource: name/mesh rules, the kind's JSON Schema, then the kind's semantic checks.
Across resources: duplicate identities, missing meshes and Secrets, and references that name
nothing in their mesh (reconciler/validate/references.py). Per-resource results depend only
on the resource, so `ResourceValidator` memoizes them by content: re-validating the next
commit only pays for the documents that changed.

A check that raises is a bug, not bad input: it becomes one error saying so (see
reconciler.validate.bugs), at the resource's file:line when it was checking one resource,
and the other checks still report everything they found.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reconciler.errors import Path, Problem, Violation
from reconciler.kinds import get_kind
from reconciler.model import Resource, Snapshot
from reconciler.validate.bugs import describe_bug, is_internal_error
from reconciler.validate.cross import duplicate_problems, missing_mesh_problems, missing_secret_problems
from reconciler.validate.meta import meta_violations
from reconciler.validate.references import dangling_reference_problems
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

    @property
    def internal_errors(self) -> tuple[Problem, ...]:
        """Problems that are bugs in mesh-reconciler, not in the configuration."""
        return tuple(p for p in self.problems if is_internal_error(p))


def _covered(path: Path, flagged: set[tuple[str | int, ...]]) -> bool:
    parts = path.parts
    return any(parts[:n] in flagged for n in range(len(parts) + 1))


def validate_resource(resource: Resource) -> tuple[Problem, ...]:
    """All problems of one resource on its own (no cross-resource checks)."""
    kind = get_kind(resource.type)
    try:
        violations: list[Violation] = list(meta_violations(resource))
        if kind is None:  # the loader only builds known kinds; this guards hand-made resources
            violations.append(Violation(Path.root("type"), f'unknown type "{resource.type}"'))
            return tuple(resource.locate(v) for v in violations)
        schema = schema_violations(resource.type, resource.document())
    except Exception as e:  # a bug must reject the commit with a message, not crash serving
        return (resource.locate(_bug(e, f"checking {resource.type} {resource.name}", resource)),)
    violations.extend(schema)
    # Semantic checks still run when the schema complained, so that one pass reports as much
    # as possible; they skip what the schema already reported at the same place.
    flagged = {v.path.parts for v in schema}
    try:
        semantic = list(kind.validate(resource))
    except Exception as e:
        # On a document the schema rejected, the schema's errors say what to fix already.
        semantic = [] if schema else [_bug(e, f"validating {resource.type} {resource.name}", resource)]
    violations.extend(v for v in semantic if not _covered(v.path, flagged))
    return tuple(resource.locate(v) for v in _dedupe(violations))


def _bug(error: Exception, doing: str, resource: Resource | None = None) -> Violation:
    """The error that reports a bug; its traceback goes to the debug log (`-v`), not to the user."""
    log.debug("internal error", exc_info=error, extra={"doing": doing, "resource": str(resource.key) if resource else "-"})
    return Violation(Path(), describe_bug(error, doing))


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


def _across(check: Callable[[], list[Problem]], doing: str) -> list[Problem]:
    """A cross-resource check's problems, or the one error that reports its bug."""
    try:
        return check()
    except Exception as e:
        violation = _bug(e, doing)
        return [Problem(None, None, None, "", violation.message)]


def validate(snapshot: Snapshot, resource_validator: ResourceValidator | None = None) -> Report:
    """Every problem in `snapshot`: read problems, per-resource problems, cross-resource ones."""
    check = resource_validator or validate_resource
    problems: list[Problem] = list(snapshot.problems)
    for resource in snapshot.resources:
        problems.extend(check(resource))
    unreadable_meshes = {p.resource.name for p in snapshot.problems if p.resource is not None and p.resource.type == "Mesh"}
    problems.extend(_across(lambda: duplicate_problems(snapshot.resources), "checking for duplicate identities"))
    problems.extend(_across(lambda: missing_mesh_problems(snapshot.resources, unreadable_meshes), "checking that meshes exist"))
    problems.extend(_across(lambda: missing_secret_problems(snapshot.resources), "checking that Secrets exist"))
    # A resource that is wrong on its own is fixed first; its references are checked after.
    broken = {p.resource for p in problems if p.is_error and p.resource is not None}
    problems.extend(
        _across(lambda: dangling_reference_problems(snapshot.resources, skip=broken), "checking that references name existing resources")
    )
    ordered = sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.pointer, p.message))
    return Report(snapshot.revision, len(snapshot.resources), tuple(ordered))
