"""TLS server certificates of builtin gateway listeners, read from their data sources (a mesh
`Secret`, `inline`, `inlineString`, `file`) as Kuma reads them: one PEM private key (RSA or
ECDSA) and its certificate chain, served over SDS under Kuma's name for the source.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.model import Resource

__all__ = ["GatewayCertificate", "gateway_certificate", "server_secret"]


@dataclass(frozen=True, slots=True)
class GatewayCertificate:
    """A TLS server certificate for a listener, delivered over SDS under `name`."""

    name: str
    """Kuma's SDS name: `cert.<rsa|ecdsa>:<secret|file|inline|inlineString>:<identifier>`."""
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)


_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)


def server_secret(data: bytes) -> tuple[str, bytes, bytes] | None:
    """(key type, certificate chain PEM, private key PEM) of a PEM bundle holding exactly one
    private key (RSA or ECDSA) and at least one certificate; None for anything else."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key: bytes | None = None
    certs: list[bytes] = []
    for block in _PEM.finditer(data):
        kind, text = block.group(1), block.group(0).rstrip(b"\r\n") + b"\n"
        if kind.endswith(b"PRIVATE KEY"):
            if key is not None:
                return None
            key = text
        elif kind.endswith(b"CERTIFICATE"):
            certs.append(text)
        else:
            return None
    if key is None or not certs:
        return None
    try:
        loaded = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        return None
    if isinstance(loaded, rsa.RSAPrivateKey):
        kind_name = "rsa"
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        kind_name = "ecdsa"
    else:
        return None
    return kind_name, b"".join(certs), key


def gateway_certificate(source: Mapping[str, Any], hostnames: str, secrets: Mapping[str, Resource]) -> GatewayCertificate | None:
    """The certificate a listener's `tls.certificates` data source names; None when it cannot be read or parsed."""
    data: bytes | None = None
    scope, identifier = "", ""
    try:
        if source.get("secret"):
            scope, identifier = "secret", str(source["secret"])
            secret = secrets.get(identifier)
            data = base64.b64decode(str(secret.spec.get("data") or "")) if secret is not None else None
        elif source.get("inline"):
            scope, identifier = "inline", hostnames
            data = base64.b64decode(str(source["inline"]))
        elif source.get("inlineString"):
            scope, identifier = "inlineString", hostnames
            data = str(source["inlineString"]).encode()
        elif source.get("file"):
            # Read on the control plane, as Kuma does; the CA provider reads files the same way.
            scope, identifier = "file", str(source["file"])
            data = Path(identifier).read_bytes()
    except (OSError, binascii.Error, ValueError):
        return None
    parsed = server_secret(data) if data else None
    if parsed is None:
        return None
    kind, chain, key = parsed
    return GatewayCertificate(f"cert.{kind}:{scope}:{identifier}", chain, key)
