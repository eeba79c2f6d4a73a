"""MeshTrust: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshTrust lists the CA certificates trusted for one trust domain. Kuma requires the trust
domain (at most 253 characters) and at least one CA bundle; a Pem bundle must hold a PEM
block that is not a private key. Setting `origin` is deprecated (Kuma keeps it in the
status now) and comes back as a warning.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from reconciler.checks import MUST_BE_DEFINED, MUST_NOT_BE_EMPTY, as_list, as_map, enumerate_list
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource

__all__ = ["KIND", "validate", "is_pem_certificate", "pem_problem", "MAX_TRUST_DOMAIN_LENGTH"]

SPEC = Path.root("spec")
MAX_TRUST_DOMAIN_LENGTH = 253
_PRIVATE_KEY_TYPES = frozenset({"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"})


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshTrust validator, plus its deprecation warning."""
    spec = as_map(resource.spec)
    out = Violations()
    out.extend(_check_bundles(spec.get("caBundles"), SPEC.field("caBundles")))
    domain = spec.get("trustDomain")
    if domain in (None, ""):
        out.add(SPEC.field("trustDomain"), "trustDomain needs to be defined")
    elif isinstance(domain, str) and len(domain) > MAX_TRUST_DOMAIN_LENGTH:
        out.add(SPEC.field("trustDomain"), f"must not be longer than {MAX_TRUST_DOMAIN_LENGTH} characters")
    if spec.get("origin") is not None:
        out.warn(SPEC.field("origin"), "setting spec.origin is deprecated; Kuma records the origin in the status")
    return list(out)


def _check_bundles(bundles: Any, path: Path) -> list[Violation]:
    if not as_list(bundles):
        return [Violation(path, MUST_NOT_BE_EMPTY + ": list at least one CA bundle")]
    out: list[Violation] = []
    for item_path, bundle in enumerate_list(bundles, path):
        bundle = as_map(bundle)
        if bundle.get("type") != "Pem":
            out.append(Violation(item_path.field("type"), f"{bundle.get('type') or 'type'} must be one of: Pem"))
            continue
        pem = bundle.get("pem")
        if not isinstance(pem, Mapping):
            out.append(Violation(item_path.field("pem"), MUST_BE_DEFINED + " when type is Pem"))
        elif isinstance(pem.get("value"), str):
            problem = pem_problem(pem["value"])
            if problem:
                out.append(Violation(item_path.field("pem").field("value"), f"provided certificate has incorrect format: {problem}"))
    return out


_BEGIN = re.compile(r"-----BEGIN ([^\r\n-]*)-----")


def is_pem_certificate(text: str) -> bool:
    return pem_problem(text) is None


def pem_problem(text: str) -> str | None:
    """Like Go's pem.Decode: the first well-formed PEM block must exist and not be a key."""
    for match in _BEGIN.finditer(text):
        if match.start() > 0 and text[match.start() - 1] != "\n":
            continue  # BEGIN must open a line
        block_type = match.group(1)
        rest = text[match.end() :]
        line_end = rest.find("\n")
        if (rest if line_end < 0 else rest[:line_end]).strip(" \t\r"):
            continue  # the BEGIN line must end after its dashes
        rest = "" if line_end < 0 else rest[line_end + 1 :]
        end = rest.find(f"-----END {block_type}-----")
        if end < 0:
            continue
        body = _strip_headers(rest[:end])
        try:
            base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            continue
        if block_type in _PRIVATE_KEY_TYPES:
            return f"the PEM block is a {block_type}, not a CA certificate"
        return None
    return "no PEM block found (-----BEGIN CERTIFICATE-----, base64 lines, -----END CERTIFICATE-----)"


def _strip_headers(body: str) -> str:
    """Drop RFC 1421 `Key: value` header lines that may open a PEM block."""
    lines = body.strip("\r\n").splitlines()
    if lines and ":" in lines[0]:
        while lines and ":" in lines[0]:
            lines.pop(0)
    return "\n".join(lines)


KIND = Kind(name="MeshTrust", scope="Mesh", flat=False, short_name="mtrust", validate=validate)
