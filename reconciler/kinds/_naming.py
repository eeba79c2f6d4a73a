"""Name rules shared by Kuma's destination kinds (MeshService, MeshExternalService,
MeshMultiZoneService) and the address checks Kuma borrows from Go libraries.

- `display_name`: the name Kuma checks and shows (`kuma.io/display-name` label, else name).
- `is_go_ip` / `is_go_dns_name`: govalidator's IsIP / IsDNSName, which Kuma uses for
  addresses; they are looser than RFC 1123 (uppercase and `_` pass).
- `dns1123_label_errors` / `dns1123_subdomain_errors` / `dns1035_label_errors`: the
  Kubernetes name rules, returning each reason a value fails.
- `destination_deprecations`: the warnings Kuma prints when applying a destination whose
  name is not an RFC 1035 label or whose SNI (`sni.<short>.<mesh>[.<zone>[.<ns>]].<name>.<port>`)
  would not be a valid DNS name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.errors import Path, Violation

__all__ = [
    "display_name",
    "check_name_length",
    "is_go_ip",
    "is_go_dns_name",
    "dns1123_label_errors",
    "dns1123_subdomain_errors",
    "dns1035_label_errors",
    "destination_deprecations",
]

DISPLAY_NAME_LABEL = "kuma.io/display-name"
ZONE_LABEL = "kuma.io/zone"
NAMESPACE_LABEL = "k8s.kuma.io/namespace"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_GO_DNS_NAME = re.compile(r"^([a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})(\.[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})*[._]?$")

LABEL_RULE = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
SUBDOMAIN_RULE = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
DNS1035_RULE = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"


def display_name(name: str, labels: Mapping[str, Any]) -> str:
    value = labels.get(DISPLAY_NAME_LABEL)
    return value if isinstance(value, str) and value else name


def check_name_length(name: str, labels: Mapping[str, Any], limit: int) -> list[Violation]:
    """Kuma limits the display name, which may come from the `kuma.io/display-name` label."""
    shown = display_name(name, labels)
    if len(shown) <= limit:
        return []
    if shown != name:
        path = Path.root("labels", DISPLAY_NAME_LABEL)
        return [Violation(path, f"must not be longer than {limit} characters (the display name is {len(shown)})")]
    return [Violation(Path.root("name"), f"must not be longer than {limit} characters (it has {len(shown)})")]


def is_go_ip(value: Any) -> bool:
    """Go's net.ParseIP: plain IPv4 or IPv6, no zone, no prefix."""
    if not isinstance(value, str) or "%" in value or "/" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_go_dns_name(value: Any) -> bool:
    """govalidator.IsDNSName: labels of letters, digits, '-' and '_', at most 255 characters."""
    if not isinstance(value, str) or value == "" or len(value.replace(".", "")) > 255:
        return False
    return not is_go_ip(value) and bool(_GO_DNS_NAME.match(value))


def dns1123_label_errors(value: str) -> list[str]:
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not _DNS1123_LABEL.match(value):
        out.append(LABEL_RULE)
    return out


def dns1123_subdomain_errors(value: str) -> list[str]:
    out = []
    if len(value) > 253:
        out.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        out.append(SUBDOMAIN_RULE)
    return out


def dns1035_label_errors(value: str) -> list[str]:
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not _DNS1035_LABEL.match(value):
        out.append(DNS1035_RULE)
    return out


def destination_deprecations(
    kind: str,
    short_name: str,
    name: str,
    mesh: str,
    labels: Mapping[str, Any],
    sections: Sequence[tuple[str, Path]],
    *,
    name_limit: int,
) -> list[Violation]:
    """Kuma's deprecation warnings for a destination's name and per-port SNIs.

    `sections` are (section name, where it is written) for each port. A problem with the
    mesh, name, zone or namespace is reported once, where that value is written; a problem
    with a section name or the SNI length, at the port.
    """
    out: list[Violation] = []
    shown = display_name(name, labels)
    name_path = Path.root("labels", DISPLAY_NAME_LABEL) if shown != name else Path.root("name")
    # The length is already an error (name_limit <= 63); only the format is worth a warning.
    reasons = [r for r in dns1035_label_errors(shown) if not (len(shown) > name_limit and r.startswith("must be no more"))]
    if reasons:
        out.append(
            Violation(
                name_path,
                f"{kind} name '{shown}' is not an RFC 1035 label ({'; '.join(reasons)}); Kuma still accepts it but such names are deprecated",
                "warning",
            )
        )
    if not sections:
        return out
    zone = labels.get(ZONE_LABEL) if isinstance(labels.get(ZONE_LABEL), str) else ""
    namespace = labels.get(NAMESPACE_LABEL) if zone and isinstance(labels.get(NAMESPACE_LABEL), str) else ""
    parts: list[tuple[str, str, Path]] = [("mesh", mesh, Path.root("mesh")), ("name", shown, name_path)]
    if zone:
        parts.append(("zone", zone, Path.root("labels", ZONE_LABEL)))
        if namespace:
            parts.append(("namespace", namespace, Path.root("labels", NAMESPACE_LABEL)))
    for what, value, path in parts:
        errors = dns1123_label_errors(value)
        if what == "name" and len(value) > name_limit:
            errors = [e for e in errors if not e.startswith("must be no more")]
        if errors:
            out.append(
                Violation(
                    path,
                    f"the {what} '{value}' makes an invalid SNI for this {kind} ({'; '.join(errors)}); such SNIs are deprecated",
                    "warning",
                )
            )
    prefix = ".".join(["sni", short_name, mesh] + ([zone] if zone else []) + ([namespace] if namespace else []) + [shown])
    for section, path in sections:
        errors = dns1123_label_errors(section)
        if errors:
            out.append(
                Violation(path, f"port name '{section}' makes an invalid SNI ({'; '.join(errors)}); such SNIs are deprecated", "warning")
            )
        sni = f"{prefix}.{section}"
        if len(sni) > 253:
            out.append(
                Violation(
                    path,
                    f"the SNI of this port would be {len(sni)} characters, over the DNS limit of 253; such SNIs are deprecated",
                    "warning",
                )
            )
    return out
