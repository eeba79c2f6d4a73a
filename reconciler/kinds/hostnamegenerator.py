"""HostnameGenerator: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A HostnameGenerator gives every selected MeshService, MeshExternalService or
MeshMultiZoneService a hostname rendered from a Go template. Kuma checks the template the
way it will use it: it must parse as a Go text/template (with the extra function `label`),
render against stub values (`.Name`, `.DisplayName`, `.Namespace`, `.Mesh`, `.Zone`) and
produce a lowercase DNS name. Exactly one kind of resource is selected.
"""

from __future__ import annotations

from reconciler.checks import MUST_NOT_BE_EMPTY, as_map, get
from reconciler.errors import Path, Violation, Violations
from reconciler.gocompat.template import ExecError, Record, TemplateError, Unsupported, execute, go_quote, parse
from reconciler.kind import Kind
from reconciler.kinds._naming import dns1123_subdomain_errors
from reconciler.model import Resource

__all__ = ["KIND", "validate", "check_template", "SELECTORS", "TEMPLATE_FIELDS"]

SPEC = Path.root("spec")
SELECTORS = ("meshService", "meshExternalService", "meshMultiZoneService")
# The stub Kuma renders the template with: each field's value is its lowercased name.
TEMPLATE_FIELDS = ("Name", "DisplayName", "Namespace", "Mesh", "Zone")
_STUB = Record({name: name.lower() for name in TEMPLATE_FIELDS})
_FUNCTIONS = {"label": lambda key: "label"}


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's HostnameGenerator validator."""
    spec = as_map(resource.spec)
    out = Violations()
    selector = as_map(spec.get("selector"))
    chosen = [name for name in SELECTORS if selector.get(name) is not None]
    if len(chosen) != 1:
        found = f" (found {', '.join(chosen)})" if chosen else ""
        out.add(SPEC.field("selector"), "exactly one of meshService, meshExternalService, meshMultiZoneService must be defined" + found)
    template = spec.get("template")
    if isinstance(template, str):
        out.extend(check_template(template, SPEC.field("template")))
    extension = spec.get("extension")
    if extension is not None and not get(extension, "type"):
        out.add(SPEC.field("extension").field("type"), MUST_NOT_BE_EMPTY)
    return list(out)


def check_template(template: str, path: Path) -> list[Violation]:
    """Parse, render with stub values, and check the result is a DNS name, as Kuma does."""
    if template == "":
        return [Violation(path, MUST_NOT_BE_EMPTY)]
    try:
        parsed = parse(template, ("label",))
        rendered = execute(parsed, _STUB, _FUNCTIONS)
    except TemplateError as e:
        return [Violation(path, f"couldn't parse template: {e}")]
    except ExecError as e:
        return [Violation(path, f"couldn't render template with stub values: {e}")]
    except Unsupported:
        # The template uses something this checker does not model; Kuma will judge it.
        return []
    problems = dns1123_subdomain_errors(rendered)
    if problems:
        return [Violation(path, f"template renders to {go_quote(rendered)} which is not a valid DNS name: {', '.join(problems)}")]
    return []


KIND = Kind(name="HostnameGenerator", scope="Global", flat=False, short_name="hg", validate=validate)
