"""What makes a workload certificate the same on every replica: its time window and the key
and serial derived from the CA's private key.

Replicas of the control plane share the CA key (a mounted Secret or one state directory) and
nothing else. If each drew a random key, serial and `now`-based validity, a proxy that
reconnects to another replica (or to the same one after a restart) would get a different SDS
secret, a push and a new handshake. Instead:

- Time is cut into windows of the renewal period (`RENEW_FRACTION` of the lifetime, whole
  seconds): window k starts at k × length on the wall clock, the same on every host. A
  certificate issued in a window is valid from its start (a little backdated) for the lifetime,
  and replaced when the window ends, with a fifth of its lifetime left.
- The EC P-256 key and the serial are HMACs, keyed by a secret derived from the CA's private
  key, over the holder, its ids and the window. Whoever holds the CA key can recompute every
  workload key: protecting the CA key protects them; nobody else can.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

__all__ = ["RENEW_FRACTION", "Window", "window_at", "backdate", "WorkloadSeed", "derive"]

RENEW_FRACTION = 0.8
"""Kuma replaces a proxy certificate after 80% of its lifetime; a window lasts that long."""

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_CONTEXT = b"mesh-reconciler workload certificate v1"


@dataclass(frozen=True, slots=True)
class Window:
    """Window `index` of `length` seconds: [index × length, (index + 1) × length)."""

    index: int
    length: int

    @property
    def start(self) -> float:
        return float(self.index * self.length)

    @property
    def end(self) -> float:
        return float((self.index + 1) * self.length)


def window_at(now: float, validity: float) -> Window:
    """The window `now` falls in, for certificates living `validity` seconds."""
    # Whole seconds: X.509 times have no fractions, and every host computes the same integers.
    length = max(1, math.floor(validity * RENEW_FRACTION))
    return Window(math.floor(now / length), length)


def backdate(validity: float) -> float:
    """How long before its window a certificate is valid: clocks of other hosts may lag."""
    return float(max(1, math.floor(min(60.0, validity / 10))))


@dataclass(frozen=True, slots=True)
class WorkloadSeed:
    """Everything a workload certificate's key and serial depend on."""

    holder: str
    """The proxy (`mesh/name`): two proxies with the same services still get their own keys."""
    spiffe_ids: Sequence[str]
    tag_uris: Sequence[str]
    validity: float
    window: Window
    issuer: str
    """Fingerprint of the CA certificate: a CA re-issued with the same key gives new keys too."""

    def message(self) -> bytes:
        return json.dumps(
            [
                self.holder,
                list(self.spiffe_ids),
                sorted(set(self.tag_uris)),
                self.validity,
                self.window.index,
                self.window.length,
                self.issuer,
            ],
            separators=(",", ":"),
        ).encode()


def _ca_secret(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    # DER of a private key is canonical: the same key gives the same bytes on every replica.
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return hmac.new(der, _CONTEXT, hashlib.sha256).digest()


def derive(ca_key: CertificateIssuerPrivateKeyTypes, seed: WorkloadSeed) -> tuple[ec.EllipticCurvePrivateKey, int]:
    """The workload's P-256 key and its certificate's serial (positive, at most 159 bits)."""
    secret = _ca_secret(ca_key)
    message = seed.message()
    # 512 bits reduced modulo a 256-bit order: the bias is negligible.
    digest = hmac.new(secret, b"key\x00" + message, hashlib.sha512).digest()
    scalar = int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1
    serial = int.from_bytes(hmac.new(secret, b"serial\x00" + message, hashlib.sha256).digest()[:20], "big") >> 1
    return ec.derive_private_key(scalar, ec.SECP256R1()), serial or 1
