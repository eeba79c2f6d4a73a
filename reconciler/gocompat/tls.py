"""Go's crypto/tls.X509KeyPair: does a PEM certificate chain and private key load as a pair?

Kuma loads a `provided` CA with it; the reasons below name what Go would refuse, in words
a user can act on.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = ["load_key_pair"]

_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]*)-----\r?\n(.*?)-----END \1-----", re.S)


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(type, DER) of each PEM block; blocks whose body is not base64 are skipped, as Go does."""
    out = []
    for m in _PEM_BLOCK.finditer(data):
        try:
            out.append((m.group(1).decode(errors="replace"), base64.b64decode(b"".join(m.group(2).split()), validate=True)))
        except (binascii.Error, ValueError):
            continue
    return out


def load_key_pair(cert_pem: bytes, key_pem: bytes) -> tuple[list[bytes], str | None]:
    """The certificate chain (DER) and why Go's tls.X509KeyPair would refuse the pair, if it would."""
    blocks = _pem_blocks(cert_pem)
    chain = [der for kind, der in blocks if kind == "CERTIFICATE"]
    if not chain:
        if not blocks:
            return [], "no PEM data found in cert"
        if len(blocks) == 1 and blocks[0][0].endswith("PRIVATE KEY"):
            return [], "cert holds a private key, not a certificate (cert and key may have been switched)"
        return [], "no CERTIFICATE PEM block found in cert"
    keys = [der for kind, der in _pem_blocks(key_pem) if kind == "PRIVATE KEY" or kind.endswith(" PRIVATE KEY")]
    if not keys:
        return [], "no PEM block with a type ending in PRIVATE KEY found in key"
    try:
        leaf = x509.load_der_x509_certificate(chain[0])
        public = leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, TypeError) as e:
        return [], f"the certificate cannot be parsed ({e})"
    try:
        key = serialization.load_der_private_key(keys[0], password=None)
    except (ValueError, TypeError):
        return [], "the private key cannot be parsed (PKCS#1, PKCS#8 or SEC 1, unencrypted)"
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != public:
        return [], "the private key does not match the certificate's public key"
    return chain, None
