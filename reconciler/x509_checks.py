"""Pure checks on CA certificates and their lifetimes, shared by Mesh validation and the CA.

A leaf: `reconciler.kinds` checks a provided CA at commit time and `reconciler.ca` checks the
CA it is about to sign with, with the same rules (X509-SVID, as Kuma applies them) and the
same reading of Kuma's certificate lifetimes (`24h`, `30d`, `1y`), without either importing
the other.
"""

from __future__ import annotations

import re
from typing import Any

from cryptography import x509

__all__ = ["ca_certificate_problems", "kuma_lifetime_seconds"]

_KUMA_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def kuma_lifetime_seconds(value: str) -> float | None:
    """Seconds in one of Kuma's certificate lifetimes (`24h`, `30d`, `1y`); None when it is not one."""
    m = _KUMA_DURATION.match(value)
    if m is None:
        return None
    return int(m.group(1)) * _UNITS[m.group(2)]


def ca_certificate_problems(cert: x509.Certificate) -> list[str]:
    """Why a certificate cannot sign workload certificates (X509-SVID rules Kuma applies):
    it must be CA:TRUE with keyCertSign, and must not allow keyAgreement."""
    basic = _extension(cert, x509.BasicConstraints)
    usage = _extension(cert, x509.KeyUsage)
    out = []
    if basic is None or not basic.ca:
        out.append("basic constraint 'CA' must be set to 'true' (see X509-SVID: 4.1. Basic Constraints)")
    if usage is None or not usage.key_cert_sign:
        out.append("key usage extension 'keyCertSign' must be set (see X509-SVID: 4.3. Key Usage)")
    if usage is not None and usage.key_agreement:
        out.append("key usage extension 'keyAgreement' must NOT be set (see X509-SVID: Appendix A. X.509 Field Reference)")
    return out


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except Exception:  # absent, or present but malformed: Go then reads the field as unset
        return None
