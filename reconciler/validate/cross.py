"""Checks that need more than one resource: duplicate identities and meshes that exist."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.errors import Path, Problem, Violation
from reconciler.model import Resource
from reconciler.types import ResourceKey

__all__ = ["duplicate_problems", "missing_mesh_problems"]


def _where(resource: Resource) -> str:
    if resource.origin is None:
        return "<generated>"
    return f"{resource.origin.file}:{resource.origin.line}"


def duplicate_problems(resources: Iterable[Resource]) -> list[Problem]:
    """Every definition of an identity after the first is an error naming both places."""
    first: dict[ResourceKey, Resource] = {}
    out: list[Problem] = []
    for r in resources:
        seen = first.get(r.key)
        if seen is None:
            first[r.key] = r
            continue
        out.append(
            r.locate(
                Violation(
                    Path.root("name"),
                    f"duplicate resource: {r.key} is also defined at {_where(seen)}; "
                    "identities (type, mesh, name) must be unique, rename or delete one",
                )
            )
        )
    return out


def missing_mesh_problems(resources: Iterable[Resource], declared: Iterable[str] = ()) -> list[Problem]:
    """A mesh-scoped resource whose mesh has no `Mesh` resource in the same snapshot.

    `declared` names Meshes that are there but could not be read (their own errors are
    reported); resources in them are not blamed for it.
    """
    resources = list(resources)
    meshes = {r.name for r in resources if r.type == "Mesh"} | set(declared)
    out: list[Problem] = []
    for r in resources:
        if r.mesh and r.mesh not in meshes:
            known = ", ".join(sorted(meshes)) or "none"
            out.append(
                r.locate(
                    Violation(
                        Path.root("mesh"),
                        f'mesh "{r.mesh}" does not exist (meshes in this revision: {known}); '
                        f"add a Mesh named {r.mesh} or set mesh: to an existing one",
                    )
                )
            )
    return out
