"""HostnameGenerator: the hostnames a MeshService, MeshExternalService or MeshMultiZoneService gets.

Kuma (pkg/core/resources/apis/hostnamegenerator/hostname/generator.go) renders every
HostnameGenerator's Go template for each resource its selector picks, and writes the results
into the resource's `status.addresses`; the sidecar's DNS then answers them with the
resource's VIP (reconciler/mesh/vips.py). Here the same happens as a pure function of the
commit:

- HostnameGenerator is global-scoped in Kuma (no `mesh`); one generator names resources of
  every mesh. Its selector names one kind (`meshService`, `meshExternalService` or
  `meshMultiZoneService`) with `matchLabels`, an empty selector of that kind picks all.
- The template sees `.Name` (the name as written; for the Kubernetes form, `metadata.name`),
  `.DisplayName` (`kuma.io/display-name`, else the name), `.Namespace`
  (`k8s.kuma.io/namespace`), `.Mesh` and `.Zone` (`kuma.io/zone`, else the local zone), and
  the function `label KEY` (an error when the resource has no such label).
- Labels are those Kuma's zone store computes (pkg/core/resources/labels/compute.go): the
  resource's own plus, when absent, `kuma.io/mesh`, `kuma.io/origin: zone`, `kuma.io/zone`
  and `kuma.io/env: universal`. So Kuma's default generators, which select
  `kuma.io/origin: zone`, name every resource committed to git.
- Order (Kuma's sortGenerators): generators with origin `zone` first, then by creation time,
  then by name. Git gives no creation time; the defaults, which Kuma creates at start, come
  first, then the committed ones by name. Resources are taken by name.
- A hostname another resource of the same kind and mesh already took is a collision; a
  template that fails (or renders a name that is not DNS-1123) is a template error. Either
  gives that generator's condition `Generated: False` and no address; the other generators'
  addresses stay. Kuma records the condition in `status.hostnameGenerators`; so does our API.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.gocompat.template import ExecError, Record, Template, TemplateError, Unsupported, execute, go_quote, parse
from reconciler.kubernetes_identity import DISPLAY_NAME_LABEL, NAMESPACE_LABEL
from reconciler.model import Resource

__all__ = [
    "ADDRESS_KINDS",
    "DEFAULT_GENERATORS",
    "LOCAL_ZONE",
    "Address",
    "GeneratorStatus",
    "Hostnames",
    "computed_labels",
    "render_hostname",
    "generate_hostnames",
    "generators_of",
]

log = logging.getLogger(__name__)

LOCAL_ZONE = "default"
"""The zone this control plane is (Kuma's `multizone.zone.name`; the CA's identity uses the same)."""
ORIGIN_LABEL = "kuma.io/origin"
ZONE_LABEL = "kuma.io/zone"
ENV_LABEL = "kuma.io/env"
MESH_LABEL = "kuma.io/mesh"

ADDRESS_KINDS = {"MeshService": "meshService", "MeshExternalService": "meshExternalService", "MeshMultiZoneService": "meshMultiZoneService"}
"""The kinds HostnameGenerators name, with the selector field that picks each."""


def _default(name: str, selector: str, template: str) -> Resource:
    spec = {"selector": {selector: {"matchLabels": {ORIGIN_LABEL: "zone"}}}, "template": template}
    return Resource.create("HostnameGenerator", name, spec, labels={ORIGIN_LABEL: "zone"})


DEFAULT_GENERATORS = (
    _default("local-mesh-external-service", "meshExternalService", "{{ .DisplayName }}.extsvc.mesh.local"),
    _default("local-universal-mesh-service", "meshService", "{{ .DisplayName }}.svc.mesh.local"),
)
"""Kuma's defaults on a Universal zone (pkg/defaults/hostname_generator.go); each applies
unless git has a HostnameGenerator of its name."""


@dataclass(frozen=True, slots=True)
class Address:
    """One `status.addresses` entry: a hostname and the generator that made it."""

    hostname: str
    generator: str


@dataclass(frozen=True, slots=True)
class GeneratorStatus:
    """One `status.hostnameGenerators` entry: the `Generated` condition of one generator."""

    generator: str
    status: str
    """"True" or "False"."""
    reason: str
    """Generated, TemplateError or Collision."""
    message: str = ""


@dataclass(frozen=True, slots=True)
class Hostnames:
    """What the generators gave one resource, sorted by generator name as Kuma writes them."""

    addresses: tuple[Address, ...] = ()
    statuses: tuple[GeneratorStatus, ...] = ()


_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _dns_name_problems(value: str) -> list[str]:
    """Kubernetes' IsDNS1123Subdomain, which Kuma applies to a rendered hostname (kinds/_naming.py
    has the validator's copy; the mesh model may not import the validation layer)."""
    out = ["must be no more than 253 characters"] if len(value) > 253 else []
    if not _DNS1123_SUBDOMAIN.match(value):
        out.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.',"
            " and must start and end with an alphanumeric character"
        )
    return out


class _RenderError(Exception):
    pass


def computed_labels(resource: Resource, zone: str = LOCAL_ZONE) -> dict[str, str]:
    """The labels Kuma's Universal zone store gives a resource created there."""
    labels = dict(resource.labels)
    if resource.mesh:
        labels.setdefault(MESH_LABEL, resource.mesh)
    labels.setdefault(ORIGIN_LABEL, "zone")
    if labels[ORIGIN_LABEL] != "global":
        labels.setdefault(ZONE_LABEL, zone)
        labels.setdefault(ENV_LABEL, "universal")
    return labels


def generators_of(resources: Iterable[Resource]) -> tuple[Resource, ...]:
    """The HostnameGenerators in effect, in Kuma's order: git's plus the defaults it does not replace."""
    committed = sorted((r for r in resources if r.type == "HostnameGenerator"), key=lambda r: r.name)
    names = {r.name for r in committed}
    defaults = [d for d in DEFAULT_GENERATORS if d.name not in names]
    ordered = defaults + committed
    # Kuma sorts zone-originated generators first (a stable sort keeps the rest of the order).
    return tuple(sorted(ordered, key=lambda r: computed_labels(r).get(ORIGIN_LABEL) != "zone"))


_PARSED: dict[str, Template | Exception] = {}
"""Templates parsed before (by text): each commit renders the same few again."""


def _parsed(template: str) -> Template:
    found = _PARSED.get(template)
    if found is None:
        try:
            found = parse(template, ("label",))
        except (TemplateError, Unsupported) as e:
            found = e
        if len(_PARSED) > 1024:
            _PARSED.clear()
        _PARSED[template] = found
    if isinstance(found, Exception):
        raise _RenderError(f"failed compiling gotemplate error={go_quote(str(found))}")
    return found


_RENDERED: dict[tuple[str, str, str, str, Mapping[str, str], str], str | ValueError] = {}
"""Renderings before, by everything they read: a commit renders again only what it changed."""


def render_hostname(template: str, resource: Resource, zone: str = LOCAL_ZONE) -> str:
    """Kuma's EvaluateTemplate for one resource; raises ValueError with Kuma's message when it fails."""
    key = (template, resource.type, resource.mesh, resource.name, resource.labels, zone)
    found = _RENDERED.get(key)
    if found is None:
        try:
            found = _render(template, resource, zone)
        except ValueError as e:
            found = e
        if len(_RENDERED) > 65536:
            _RENDERED.clear()
        _RENDERED[key] = found
    if isinstance(found, ValueError):
        raise ValueError(str(found))
    return found


def _render(template: str, resource: Resource, zone: str) -> str:
    labels = computed_labels(resource, zone)

    def label(key: object) -> str:
        value = labels.get(str(key))
        if value is None:
            raise ExecError(f"label {key} not found")
        return value

    name = labels.get(DISPLAY_NAME_LABEL, resource.name) if NAMESPACE_LABEL in resource.labels else resource.name
    data = Record(
        {
            "Name": name,
            "DisplayName": labels.get(DISPLAY_NAME_LABEL, name),
            "Namespace": labels.get(NAMESPACE_LABEL, ""),
            "Mesh": resource.mesh,
            "Zone": labels.get(ZONE_LABEL) or zone,
        }
    )
    try:
        rendered = execute(_parsed(template), data, {"label": label})
    except _RenderError as e:
        raise ValueError(str(e)) from None
    except (ExecError, Unsupported) as e:
        raise ValueError(f"pre evaluation of template with parameters failed with error={go_quote(str(e))}") from None
    problems = _dns_name_problems(rendered)
    if problems:
        raise ValueError(f"generated hostname {go_quote(rendered)} is not a valid DNS name: {', '.join(problems)}")
    return rendered


def _selects(generator: Resource, kind: str, resource: Resource, labels: Mapping[str, str]) -> bool:
    selector = (generator.spec.get("selector") or {}).get(ADDRESS_KINDS[kind])
    if not isinstance(selector, Mapping):
        return False
    wanted = selector.get("matchLabels") or {}
    return all(labels.get(str(k)) == str(v) for k, v in wanted.items())


def generate_hostnames(
    generators: Iterable[Resource], resources: Iterable[Resource], zone: str = LOCAL_ZONE
) -> dict[tuple[str, str, str], Hostnames]:
    """(kind, mesh, name) → the hostnames and generator conditions of each resource of ADDRESS_KINDS.

    `generators` in Kuma's order (generators_of). Resources that no generator selects get none.
    """
    ordered = tuple(generators)
    by_kind: dict[str, list[Resource]] = {}
    for r in resources:
        if r.type in ADDRESS_KINDS:
            by_kind.setdefault(r.type, []).append(r)
    out: dict[tuple[str, str, str], Hostnames] = {}
    for kind, items in by_kind.items():
        items.sort(key=lambda r: (r.name, r.mesh))
        labels = {id(r): computed_labels(r, zone) for r in items}
        taken: dict[tuple[str, str], str] = {}  # (mesh, hostname) → name of the resource that has it
        found: dict[tuple[str, str], dict[str, tuple[str, GeneratorStatus]]] = {}
        for generator in ordered:
            template = str(generator.spec.get("template") or "")
            for r in items:
                if not _selects(generator, kind, r, labels[id(r)]):
                    continue
                try:
                    hostname = render_hostname(template, r, zone)
                except ValueError as e:
                    log.debug(
                        "hostname template failed", extra={"generator": generator.name, "kind": kind, "resource": r.name, "error": str(e)}
                    )
                    status = GeneratorStatus(generator.name, "False", "TemplateError", str(e))
                    found.setdefault((r.mesh, r.name), {})[generator.name] = ("", status)
                    continue
                owner = taken.setdefault((r.mesh, hostname), r.name)
                if owner != r.name:
                    status = GeneratorStatus(generator.name, "False", "Collision", f"Hostname collision with {kind}: {r.name}")
                    hostname = ""
                else:
                    status = GeneratorStatus(generator.name, "True", "Generated")
                found.setdefault((r.mesh, r.name), {})[generator.name] = (hostname, status)
        for (mesh, name), per_generator in found.items():
            names = sorted(per_generator)
            out[(kind, mesh, name)] = Hostnames(
                tuple(Address(per_generator[g][0], g) for g in names if per_generator[g][0]),
                tuple(per_generator[g][1] for g in names),
            )
    return out
