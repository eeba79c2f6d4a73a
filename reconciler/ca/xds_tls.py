"""The control plane's own CA and the xDS server certificate it signs.

Kuma's control plane always serves xDS over TLS; so does `reconciler serve` unless told
`--xds-tls none`. The CA is made once and kept in `<state>/xds-tls/`:

    ca.crt       the CA certificate, mode 0644: give it to `run-dataplane --ca-cert`
    ca.pem       CA certificate and private key, mode 0600
    server.pem   server certificate and private key, mode 0600

A restart reuses the CA, so proxies keep trusting the control plane. The server certificate
is reissued by the same CA when its names change (`--xds-tls-san`, `--address`) or when it
is within `RENEW_BEFORE` of expiry. Keys are ECDSA P-256. Nothing here goes into git.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from reconciler.ca.statefiles import create_private_once, ensure_state_dir, read_private, write_private, write_public

__all__ = ["DIRECTORY", "CA_VALIDITY", "SERVER_VALIDITY", "RENEW_BEFORE", "XdsCertificate", "ca_cert_path", "default_names", "load_or_create", "fingerprint"]

DIRECTORY = "xds-tls"
CA_VALIDITY = 10 * 365 * 86400
SERVER_VALIDITY = 365 * 86400
RENEW_BEFORE = 30 * 86400


@dataclass(frozen=True, slots=True)
class XdsCertificate:
    ca_cert_pem: bytes
    cert_chain_pem: bytes
    """Server certificate, then the CA certificate."""
    key_pem: bytes
    names: tuple[str, ...]
    not_after: float

    @property
    def renew_at(self) -> float:
        return self.not_after - min(RENEW_BEFORE, (self.not_after - time.time()) / 2)


def ca_cert_path(state_dir: str | Path) -> Path:
    """Where `serve` writes the CA certificate that verifies its xDS server."""
    return Path(state_dir) / DIRECTORY / "ca.crt"


def default_names(address: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Names the server certificate carries: loopback, this host's name, the listen address
    when it is a specific one, and `extra` (e.g. a Service DNS name on Kubernetes)."""
    names = ["localhost", "127.0.0.1", "::1"]
    host = socket.gethostname()  # not getfqdn(): a DNS lookup can stall the start
    if host and host not in names:
        names.append(host)
    try:
        ip = ipaddress.ip_address(address)
        if not ip.is_unspecified:
            names.append(str(ip))
    except ValueError:
        if address:
            names.append(address)
    names += [n.strip() for n in extra if n.strip()]
    return tuple(dict.fromkeys(names))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _split(pem: bytes) -> tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]:
    certs = x509.load_pem_x509_certificates(pem[: pem.index(b"-----BEGIN PRIVATE KEY-----")])
    key = serialization.load_pem_private_key(pem[pem.index(b"-----BEGIN PRIVATE KEY-----") :], password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an ECDSA key")
    return certs, key


def _new_ca() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mesh-reconciler"), x509.NameAttribute(NameOID.COMMON_NAME, "mesh-reconciler xDS CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(seconds=CA_VALIDITY))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + _key_pem(key)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for n in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            entries.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(entries)


def _new_server(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: Sequence[str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    not_after = min(now + dt.timedelta(seconds=SERVER_VALIDITY), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mesh-reconciler control plane")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM) + _key_pem(key)


def _names_of(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | {str(v) for v in san.get_values_for_type(x509.IPAddress)}


def _canonical(names: Iterable[str]) -> set[str]:
    out = set()
    for n in names:
        try:
            out.add(str(ipaddress.ip_address(n)))
        except ValueError:
            out.add(n)
    return out


def load_or_create(state_dir: str | Path, names: Sequence[str], *, now: float | None = None) -> XdsCertificate:
    """The CA (created once) and a server certificate for `names` (reissued when needed)."""
    directory = ensure_state_dir(state_dir) / DIRECTORY
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)  # ca.crt must be readable by whoever starts the proxies
    ca_file = directory / "ca.pem"
    if not ca_file.exists():
        create_private_once(ca_file, _new_ca())
    (ca_cert, *_), ca_key = _split(read_private(ca_file))
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    public = ca_cert_path(state_dir)
    if not public.exists() or public.read_bytes() != ca_pem:
        write_public(public, ca_pem)

    t = now if now is not None else time.time()
    server_file = directory / "server.pem"
    pem = read_private(server_file) if server_file.exists() else b""
    if pem:
        certs, _ = _split(pem)
        leaf = certs[0]
        fresh = (
            leaf.issuer == ca_cert.subject
            and _names_of(leaf) == _canonical(names)
            and leaf.not_valid_after_utc.timestamp() - t > RENEW_BEFORE
            and _same_key(leaf, ca_key)
        )
        if not fresh:
            pem = b""
    if not pem:
        pem = _new_server(ca_cert, ca_key, names)
        write_private(server_file, pem)
    certs, key = _split(pem)
    return XdsCertificate(
        ca_cert_pem=ca_pem,
        cert_chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs),
        key_pem=_key_pem(key),
        names=tuple(names),
        not_after=certs[0].not_valid_after_utc.timestamp(),
    )


def _same_key(leaf: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> bool:
    """The leaf was signed by this CA key (not a CA of the same name made elsewhere)."""
    try:
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return False
    return aki == x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()).key_identifier


def fingerprint(pem: bytes) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)).hexdigest()
