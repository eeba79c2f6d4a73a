"""Warnings for targetRefs and backendRefs that name nothing in their mesh.

Kuma accepts a reference to a MeshService, service, MeshHTTPRoute, MeshGateway or
MeshExternalService that does not exist (it may be created later): the policy or route then
selects nothing, silently. A typo in a name is the usual cause, so each such reference gets a
warning at its file:line with the closest existing name ("did you mean").

A Mesh labelled `mesh-reconciler.io/strict-references: "true"` turns these warnings into
errors for the resources of that mesh: `validate`, `plan`, the pre-receive hook and the server
then reject the commit. A label, because an unknown field in a Mesh's spec is an error in Kuma.

Only names written in this revision are known. Service names (`kuma.io/service`) also come
from proxies that register themselves at runtime, so they are checked only in meshes that
have Dataplanes or MeshServices in git; references by labels or to another namespace are not
checked (they name no single resource here).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from reconciler.checks import as_list, get
from reconciler.errors import Path, Problem, Violation
from reconciler.kubernetes_identity import DISPLAY_NAME_LABEL
from reconciler.model import Resource
from reconciler.types import ResourceKey

__all__ = ["STRICT_REFERENCES_LABEL", "dangling_reference_problems", "references_of"]

STRICT_REFERENCES_LABEL = "mesh-reconciler.io/strict-references"
"""On a Mesh, `"true"` makes a dangling reference in that mesh an error."""

SERVICE_TAG = "kuma.io/service"


@dataclass
class _Names:
    """What one mesh defines, by the kind a targetRef names it with."""

    mesh_services: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    """`kuma.io/service` values of Dataplanes (inbounds, gateways) and MeshService selectors."""
    routes: set[str] = field(default_factory=set)
    gateways: set[str] = field(default_factory=set)
    externals: set[str] = field(default_factory=set)
    multizone: set[str] = field(default_factory=set)
    has_dataplanes: bool = False

    def candidates(self, kind: str) -> set[str] | None:
        """Names a reference of `kind` may use; None when this revision cannot tell."""
        if kind in ("MeshService", "MeshServiceSubset"):
            if not (self.has_dataplanes or self.mesh_services):
                return None
            return self.mesh_services | self.services
        return {
            "MeshHTTPRoute": self.routes,
            "MeshGateway": self.gateways,
            "MeshExternalService": self.externals,
            "MeshMultiZoneService": self.multizone,
        }.get(kind)


def _tag(tags: Any) -> str | None:
    value = get(tags, SERVICE_TAG)
    return value if isinstance(value, str) and value else None


_DATAPLANE_SERVICES: dict[str, tuple[str, ...]] = {}
_REFERENCES: dict[str, tuple[tuple[Path, str, str], ...]] = {}
_MEMO_SIZE = 100_000

T = TypeVar("T")


def _memoized(memo: dict[str, T], r: Resource, compute: Callable[[Resource], T]) -> T:
    """`compute(r)` once per content: the next commit re-checks only the documents that changed."""
    if not r.digest:
        return compute(r)
    hit = memo.get(r.digest)
    if hit is None:
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        hit = memo[r.digest] = compute(r)
    return hit


def _dataplane_services(r: Resource) -> tuple[str, ...]:
    tags = [get(inbound, "tags") for inbound in as_list(get(r.spec, "networking", "inbound"))]
    tags.append(get(r.spec, "networking", "gateway", "tags"))
    return tuple(s for s in map(_tag, tags) if s)


def _named_references(r: Resource) -> tuple[tuple[Path, str, str], ...]:
    """(path of the name, kind, name) of each reference that names one resource."""
    out = []
    for path, ref in references_of(r):
        kind, name = ref.get("kind"), ref.get("name")
        if isinstance(kind, str) and isinstance(name, str) and name and not ref.get("namespace"):
            out.append((path.field("name"), kind, name))
    return tuple(out)


def _names_by_mesh(resources: Iterable[Resource]) -> dict[str, _Names]:
    out: dict[str, _Names] = {}
    for r in resources:
        names = out.get(r.mesh)
        if names is None:
            names = out[r.mesh] = _Names()
        spec = r.spec
        # Kubernetes form stores `name.namespace`; a reference names the display name (and a
        # namespace, the policy's own when left out), so both are known names.
        shown = {r.name, str(r.labels.get(DISPLAY_NAME_LABEL) or r.name)}
        if r.type == "Dataplane":
            names.has_dataplanes = True
            services: tuple[str, ...] = _memoized(_DATAPLANE_SERVICES, r, _dataplane_services)
            names.services.update(services)
        elif r.type == "MeshService":
            names.mesh_services.update(shown)
            service = _tag(get(spec, "selector", "dataplaneTags"))
            if service:
                names.services.add(service)
        elif r.type == "MeshHTTPRoute":
            names.routes.update(shown)
        elif r.type == "MeshGateway":
            names.gateways.add(r.name)
        elif r.type == "MeshExternalService":
            names.externals.update(shown)
        elif r.type == "MeshMultiZoneService":
            names.multizone.update(shown)
    return out


def references_of(resource: Resource) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    """Every targetRef and backendRef of a policy, with where it is: top-level, `to`, `from`,
    and the backendRefs and mirror backendRefs of `to[].rules[]`."""
    if resource.flat:
        return
    spec = resource.spec
    root = resource.spec_root
    ref = get(spec, "targetRef")
    if isinstance(ref, Mapping):
        yield root.field("targetRef"), ref
    for section in ("to", "from"):
        for i, entry in enumerate(as_list(get(spec, section))):
            at = root.field(section).index(i)
            ref = get(entry, "targetRef")
            if isinstance(ref, Mapping):
                yield at.field("targetRef"), ref
            if section != "to":
                continue
            for j, rule in enumerate(as_list(get(entry, "rules"))):
                default = at.field("rules").index(j).field("default")
                for k, backend in enumerate(as_list(get(rule, "default", "backendRefs"))):
                    if isinstance(backend, Mapping):
                        yield default.field("backendRefs").index(k), backend
                for k, filter_ in enumerate(as_list(get(rule, "default", "filters"))):
                    mirror = get(filter_, "requestMirror", "backendRef")
                    if isinstance(mirror, Mapping):
                        yield default.field("filters").index(k).field("requestMirror").field("backendRef"), mirror


@lru_cache(maxsize=4096)
def _closest(name: str, known: frozenset[str]) -> list[str]:
    # One misspelt name is usually written in many policies: look it up once.
    return difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)


def _message(kind: str, name: str, mesh: str, known: set[str], strict: bool) -> str:
    if kind in ("MeshService", "MeshServiceSubset"):
        what = f'no MeshService and no Dataplane with kuma.io/service "{name}" in mesh "{mesh}"'
    else:
        what = f'{kind} "{name}" does not exist in mesh "{mesh}"'
    close = _closest(name, frozenset(known))
    hint = f'did you mean "{close[0]}"? ' if close else ""
    consequence = (
        f"the Mesh's label {STRICT_REFERENCES_LABEL} makes this an error"
        if strict
        else "Kuma accepts it and it selects nothing until that exists"
    )
    return f"{what}; {hint}{consequence}; fix the name or add the {'service' if kind == 'MeshServiceSubset' else kind}"


def dangling_reference_problems(resources: Iterable[Resource], skip: Collection[ResourceKey] = ()) -> list[Problem]:
    """A warning (an error in a strict mesh) for each reference to a name its mesh lacks;
    the references of the resources in `skip` (those with errors of their own) are not checked."""
    resources = list(resources)
    names = _names_by_mesh(resources)
    strict = {r.name for r in resources if r.type == "Mesh" and r.labels.get(STRICT_REFERENCES_LABEL) == "true"}
    out: list[Problem] = []
    for r in resources:
        if r.flat or not r.mesh or r.key in skip:
            continue
        defined = names[r.mesh]
        for path, kind, name in _memoized(_REFERENCES, r, _named_references):
            known = defined.candidates(kind)
            if known is None or name in known:
                continue
            is_strict = r.mesh in strict
            message = _message(kind, name, r.mesh, known, is_strict)
            out.append(r.locate(Violation(path, message, "error" if is_strict else "warning")))
    return out
