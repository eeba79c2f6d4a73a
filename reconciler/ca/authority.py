"""Certificate authorities and the workload certificates they sign, with `cryptography`.

A mesh CA is an RSA root (Kuma's builtin CA; `RSAbits`, default 2048, and `expiration`,
default 10 years) or a certificate and key the user provides. Workload certificates carry the
proxy's SPIFFE ids (`spiffe://<mesh>/<service>`, one per inbound service) and Kuma's tag
URIs (`kuma://<tag>/<value>`) as URI SANs, and an ECDSA P-256 key: cheap to make for
thousands of proxies and short lifetimes. They are deterministic (ca/derivation.py): the same
CA, proxy and time window give the same bytes on every replica.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from reconciler.ca.derivation import WorkloadSeed, backdate, derive, window_at
from reconciler.x509_checks import ca_certificate_problems, kuma_lifetime_seconds

__all__ = [
    "Authority",
    "WorkloadCertificate",
    "generate_root",
    "load_authority",
    "issue_workload",
    "parse_kuma_duration",
    "CaError",
]


class CaError(Exception):
    """A CA cannot be created or loaded (bad PEM, key does not match the certificate, ...)."""


def parse_kuma_duration(value: str | None, default: float) -> float:
    """Seconds in Kuma's certificate lifetimes (`24h`, `30d`, `1y`); `default` when unset."""
    if not value:
        return default
    seconds = kuma_lifetime_seconds(str(value))
    if seconds is None:
        raise CaError(f"{value!r} is not a duration like 24h, 30d or 1y")
    return seconds


@dataclass(frozen=True, slots=True)
class Authority:
    """A CA that can sign: its certificate (PEM) and private key."""

    name: str
    cert_pem: bytes
    key: CertificateIssuerPrivateKeyTypes = field(repr=False, compare=False)

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.cert_pem).hexdigest()[:16]

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass(frozen=True, slots=True)
class WorkloadCertificate:
    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    not_before: float
    not_after: float
    spiffe_ids: tuple[str, ...]
    issuer: str
    """Fingerprint of the signing CA."""
    renew_at: float
    """When to replace it: the end of the window it was issued in (80% of its lifetime after the
    window start). Before then, issuing again gives this very certificate."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def generate_root(mesh: str, backend: str, *, rsa_bits: int = 2048, validity: float = 10 * 365 * 86400) -> Authority:
    key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mesh-reconciler"), x509.NameAttribute(NameOID.COMMON_NAME, f"{mesh} {backend} CA")]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(seconds=validity))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{mesh}")]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(backend, cert.public_bytes(serialization.Encoding.PEM), key)


def load_authority(name: str, cert_pem: bytes, key_pem: bytes) -> Authority:
    """A provided CA: checks it is a CA certificate whose key matches."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as e:
        raise CaError(f"CA {name!r}: cannot read certificate or key: {e}") from None
    problems = ca_certificate_problems(cert)
    if problems:
        raise CaError(f"CA {name!r}: " + "; ".join(problems))
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if public != cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CaError(f"CA {name!r}: the private key does not match the certificate")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise CaError(f"CA {name!r}: only RSA and ECDSA keys are supported")
    return Authority(name, cert.public_bytes(serialization.Encoding.PEM), key)


def issue_workload(
    ca: Authority, spiffe_ids: Sequence[str], tag_uris: Iterable[str], validity: float, *, now: float | None = None, holder: str = ""
) -> WorkloadCertificate:
    """The certificate of proxy `holder` (`mesh/name`) for the window `now` falls in: valid from
    the window start (backdated a little) for `validity` seconds. The same arguments within one
    window give the same bytes (key, serial, dates and signature), on any host with the CA key."""
    tags = sorted(set(tag_uris))
    window = window_at(time.time() if now is None else now, validity)
    key, serial = derive(ca.key, WorkloadSeed(holder, tuple(spiffe_ids), tuple(tags), validity, window, ca.fingerprint))
    start = dt.datetime.fromtimestamp(window.start, dt.UTC)
    not_before = start - dt.timedelta(seconds=backdate(validity))
    not_after = start + dt.timedelta(seconds=validity)
    uris = [x509.UniformResourceIdentifier(u) for u in list(spiffe_ids) + tags]
    issuer_cert = ca.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mesh-reconciler")]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    # A proxy with no service (only tagless inbounds) has no identity to name: its certificate
    # carries no SAN, so peers that match SPIFFE ids refuse it (fail closed) rather than
    # trusting an id it does not have. X.509 forbids an empty SAN extension.
    if uris:
        builder = builder.add_extension(x509.SubjectAlternativeName(uris), critical=True)
    # RSA PKCS#1 v1.5 signatures are deterministic; ECDSA ones are when asked (RFC 6979).
    if isinstance(ca.key, ec.EllipticCurvePrivateKey):
        cert = builder.sign(ca.key, hashes.SHA256(), ecdsa_deterministic=True)
    else:
        cert = builder.sign(ca.key, hashes.SHA256())
    return WorkloadCertificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        not_before=not_before.timestamp(),
        not_after=not_after.timestamp(),
        spiffe_ids=tuple(spiffe_ids),
        issuer=ca.fingerprint,
        renew_at=window.end,
    )
