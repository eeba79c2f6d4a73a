"""A Mesh's mTLS section: its CA backends, as Kuma's validator and CA plugins check them.

Kuma's mesh manager runs each CA backend's plugin validation when the Mesh is applied
(skipped when `mtls.skipValidation` is true): a `builtin` CA's Secret name and lifetime, a
`provided` CA's data sources, and, when given inline, that the pair loads and is a CA.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from reconciler.checks import as_list, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.gocompat.encoding import decode_base64
from reconciler.gocompat.net import is_dns_name
from reconciler.gocompat.tls import load_key_pair
from reconciler.kinds._protojson import names_hint, quote, text, uint
from reconciler.x509_checks import ca_certificate_problems, kuma_lifetime_seconds

__all__ = ["CA_TYPES", "check_mtls", "check_data_source", "parse_kuma_duration"]

ROOT = Path()
CA_TYPES = ("builtin", "provided")
"""CA plugins a Kuma v2.14 control plane ships."""

_MAX_MTLS_BACKENDS = 1
_MAX_BUILTIN_SECRET_NAME = 255
_KUMA_DURATION_HINT = "a whole number and one unit of y, w, d, h, m, s or ms, e.g. 24h, 30d or 1y"


_KUMA_DURATION = re.compile(r"(\d+)(y|w|d|h|m|s|ms)")


def parse_kuma_duration(value: str) -> bool:
    """Kuma's own ParseDuration (certificate lifetimes): `0`, or digits and one of y w d h m s ms."""
    return value == "0" or _KUMA_DURATION.fullmatch(value) is not None


def check_mtls(mtls: Any, mesh_name: str) -> list[Violation]:
    path = ROOT.field("mtls")
    out = Violations()
    backends = as_list(get(mtls, "backends"))
    if len(backends) > _MAX_MTLS_BACKENDS:
        out.add(path.field("backends"), f"cannot have more than {_MAX_MTLS_BACKENDS} backends")
    used: list[str] = []
    skip_validation = get(mtls, "skipValidation") is True
    for bpath, backend in enumerate_list(backends, path.field("backends")):
        name = text(get(backend, "name"))
        if name in used:
            out.add(bpath.field("name"), f"{quote(name)} name is already used for another backend")
        used.append(name)
        dp_cert = get(backend, "dpCert")
        expiration = text(get(dp_cert, "rotation", "expiration"))
        if isinstance(dp_cert, Mapping) and not parse_kuma_duration(expiration):
            # Kuma parses the expiration whenever dpCert is there, so leaving it out fails too.
            hint = _KUMA_DURATION_HINT if expiration else "dpCert needs rotation.expiration, e.g. 24h"
            out.add(bpath.field("dpCert").field("rotation").field("expiration"), f"has to be a valid format: {hint}")
        else:
            out.extend(
                _check_lifetime(
                    expiration, bpath.field("dpCert").field("rotation").field("expiration"), _MIN_DP_CERT_LIFETIME, _SHORT_DP_CERT
                )
            )
        out.extend(_check_ca_plugin(backend, bpath, mesh_name, skip_validation))
    enabled = text(get(mtls, "enabledBackend"))
    if enabled and enabled not in used:
        out.add(path.field("enabledBackend"), "has to be set to one of the backends in the mesh" + names_hint(used))
    return list(out)


def _check_ca_plugin(backend: Any, path: Path, mesh_name: str, skip_validation: bool) -> list[Violation]:
    """What the builtin and provided CA plugins check when Kuma creates or updates the Mesh."""
    kind = get(backend, "type")
    if not isinstance(kind, str) and kind is not None:
        return []
    if kind not in CA_TYPES:
        return [Violation(path.field("type"), 'could not find installed plugin for this type; Kuma ships "builtin" and "provided"')]
    if skip_validation:
        return []
    conf = get(backend, "conf")
    if kind == "builtin":
        return _check_builtin_ca(backend, conf, path, mesh_name)
    out = []
    for field in ("cert", "key"):
        source = get(conf, field)
        where = path.field("conf").field(field)
        if source is None:
            out.append(Violation(where, "has to be defined"))
        else:
            out.extend(check_data_source(source, where, chosen_required=True))
    if not any(v.severity == "error" for v in out):
        out.extend(_check_inline_ca(conf, path.field("conf")))
    return out


# -- provided CA given inline: Kuma loads the pair and checks it is a CA ---------------------
_PAIR_HINT = "put the CA certificate (PEM, -----BEGIN CERTIFICATE-----) in cert and its private key (PEM) in key"


def _inline_bytes(source: Any) -> bytes | None:
    """The data of an inline or inlineString source; None for secret or file (not readable here)."""
    if not isinstance(source, Mapping):
        return None
    present = [f for f in _SOURCES if source.get(f) is not None]
    chosen = present[-1] if present else None
    value = source.get(chosen) if chosen else None
    if chosen == "inline" and isinstance(value, str):
        return decode_base64(value)
    if chosen == "inlineString" and isinstance(value, str):
        return value.encode()
    return None


def _check_inline_ca(conf: Any, path: Path) -> list[Violation]:
    """Kuma refuses a provided CA whose pair does not load or is not a CA (X509-SVID rules).

    Only inline data can be checked here; a Secret or a file is read by the control plane.
    """
    cert_pem, key_pem = _inline_bytes(get(conf, "cert")), _inline_bytes(get(conf, "key"))
    if cert_pem is None or key_pem is None:
        return []
    where = path.field("cert")
    chain, problem = load_key_pair(cert_pem, key_pem)
    if problem:
        return [Violation(where, f"not a valid TLS key pair: {problem}; {_PAIR_HINT}")]
    out = []
    for i, der in enumerate(chain):
        prefix = f"certificate #{i + 1} of the chain: " if len(chain) > 1 else ""
        try:
            problems = ca_certificate_problems(x509.load_der_x509_certificate(der))
        except ValueError as e:
            problems = [f"not a valid x509 certificate: {e}"]
        out += [Violation(where, prefix + message) for message in problems]
    return out


def _check_builtin_ca(backend: Any, conf: Any, path: Path, mesh_name: str) -> list[Violation]:
    out = []
    name = text(get(backend, "name"))
    # The plugin stores the CA as a Secret named after the mesh and the backend.
    secret = f"{mesh_name}.ca-builtin-cert-{name}"
    if len(secret) > _MAX_BUILTIN_SECRET_NAME:
        out.append(Violation(path.field("name"), f"Backend name is too long. Max length: {_MAX_BUILTIN_SECRET_NAME}"))
    if not is_dns_name(secret) or secret != secret.lower():
        out.append(Violation(path.field("name"), f"{quote(name)} name must be valid dns name (lowercase letters, digits, '-' and '.')"))
    expiration = get(conf, "caCert", "expiration")
    if isinstance(expiration, str) and expiration and not parse_kuma_duration(expiration):
        out.append(Violation(path.field("conf").field("caCert").field("expiration"), f"has to be a valid format: {_KUMA_DURATION_HINT}"))
    elif isinstance(expiration, str):
        out.extend(_check_lifetime(expiration, path.field("conf").field("caCert").field("expiration"), _MIN_CA_LIFETIME, _SHORT_CA))
    bits = uint(get(conf, "caCert", "RSAbits"))
    if bits and not _RSA_BITS[0] <= bits <= _RSA_BITS[1]:
        # Not a Kuma rule: the control plane generates this key itself, and a smaller one is
        # refused by the crypto library while a much larger one takes minutes to generate.
        out.append(
            Violation(
                path.field("conf").field("caCert").field("RSAbits"),
                f"must be in inclusive range [{_RSA_BITS[0]}, {_RSA_BITS[1]}] (unset: 2048)",
            )
        )
    return out


_RSA_BITS = (2048, 4096)
_MIN_CA_LIFETIME = 3600.0
_SHORT_CA = "must be at least 1h: the proxies' certificates cannot outlive their CA"
_MIN_DP_CERT_LIFETIME = 1.0
_SHORT_DP_CERT = "must be at least 1s: certificates are renewed at 80% of their lifetime, a shorter one keeps every proxy reissuing"
_MAX_LIFETIME = 100 * 365 * 86400.0
"""Not Kuma rules, limits of what the control plane can issue: X.509 dates end in 9999, and a
certificate is renewed at 80% of its life, so a very short one keeps every proxy reissuing."""


def _check_lifetime(value: str, path: Path, minimum: float, too_short: str) -> list[Violation]:
    """A certificate lifetime (already a valid Kuma duration, or empty for the default) in bounds."""
    if not value:
        return []
    seconds = 0.0 if value == "0" else kuma_lifetime_seconds(value)
    if seconds is None:
        return []
    if seconds < minimum:
        return [Violation(path, too_short)]
    if seconds > _MAX_LIFETIME:
        return [Violation(path, "must be at most 100y")]
    return []


_SOURCES = ("secret", "file", "inline", "inlineString")


def check_data_source(source: Any, path: Path, *, chosen_required: bool) -> list[Violation]:
    """A DataSource (secret, file, inline or inlineString) as Kuma's CA plugins check it."""
    if not isinstance(source, Mapping):
        return []
    out = []
    present = [f for f in _SOURCES if source.get(f) is not None]
    if not present:
        if chosen_required:
            out.append(Violation(path, "data source has to be chosen. Available sources: secret, file, inline"))
        return out
    if len(present) > 1:
        # Protobuf keeps the last field of a oneof it reads; the others are silently dropped.
        out.append(
            Violation(path, f"only one of secret, file, inline and inlineString can be set; Kuma would use {quote(present[-1])}", "warning")
        )
    chosen = present[-1]
    value = source.get(chosen)
    if not isinstance(value, str):
        return out
    if chosen == "inline":
        decoded = decode_base64(value)
        if decoded is None:
            out.append(
                Violation(
                    path.field("inline"), "must be base64-encoded (standard alphabet, with = padding), e.g. the output of `base64 -w0 file`"
                )
            )
        elif not decoded:
            out.append(Violation(path.field("inline"), "cannot be empty"))
    elif chosen in ("secret", "file") and value == "":
        out.append(Violation(path.field(chosen), "cannot be empty"))
    return out
