"""The control plane's own CA and the xDS server certificate it signs.

Kuma's control plane always serves xDS over TLS; so does `reconciler serve` unless told
`--xds-tls none`. The CA is made once and kept in `<state>/xds-tls/`:

    ca.crt       the CA certificate, mode 0644: give it to `run-dataplane --ca-cert`
    ca.pem       CA certificate and private key, mode 0600
    server.pem   server certificate and private key, mode 0600

A restart reuses the CA, so proxies keep trusting the control plane. The server certificate
is reissued by the same CA when its names change (`--xds-tls-san`, `--address`) or when it
is within `RENEW_BEFORE` of expiry. Keys are ECDSA P-256. Nothing here goes into git.

ca.crt is also the record of which CA proxies were given: a CA is never made anew, nor
ca.crt rewritten, while ca.crt names a CA whose key is not in ca.pem (`KeyMissing`, or
`KeyFileUnusable` for another CA's ca.pem); `check_state(rotate_missing=True)` accepts that
at start, and says what it means for proxies.

With a keys directory (`serve --keys-dir`), the CA is read from `xds-ca.crt` and `xds-ca.key`
there and never made; ca.pem is not used, and server.pem (this replica's) stays in the state
directory, so every replica presents a certificate from the same CA.
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

from reconciler.ca.keys_dir import read_xds_ca
from reconciler.ca.statefiles import (
    ROTATE_FLAG,
    KeyFileUnusable,
    KeyMissing,
    create_private_once,
    ensure_state_dir,
    read_private,
    write_private,
    write_public,
)

__all__ = [
    "DIRECTORY",
    "CA_VALIDITY",
    "SERVER_VALIDITY",
    "RENEW_BEFORE",
    "XdsCertificate",
    "ca_cert_path",
    "default_names",
    "check_state",
    "load_or_create",
    "fingerprint",
    "new_ca",
]

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
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


_KEY_BEGIN = b"-----BEGIN PRIVATE KEY-----"


def _split(pem: bytes) -> tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]:
    certs = x509.load_pem_x509_certificates(pem[: pem.index(_KEY_BEGIN)])
    key = serialization.load_pem_private_key(pem[pem.index(_KEY_BEGIN) :], password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an ECDSA key")
    return certs, key


def _read_pair(path: Path) -> tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]:
    """The certificates and key of one of our PEM files, or `KeyFileUnusable` saying why not."""
    data = read_private(path)
    try:
        return _split(data)
    except ValueError as e:
        why = "no private key in it" if _KEY_BEGIN not in data else str(e).split(". ")[0]
        hint = (
            f"restore it from a backup, or remove it and start `reconciler serve {ROTATE_FLAG}` to make a new CA"
            if path.name == "ca.pem"
            else "remove it to have it issued again by the CA"
        )
        raise KeyFileUnusable(
            path, f"expected a PEM certificate and private key (ECDSA) as mesh-reconciler writes them ({why}); {hint}"
        ) from None


def new_ca() -> bytes:
    """A new xDS CA: its certificate, then its private key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mesh-reconciler"),
            x509.NameAttribute(NameOID.COMMON_NAME, "mesh-reconciler xDS CA"),
        ]
    )
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


def check_state(state_dir: str | Path, *, rotate_missing: bool = False, keys_dir: str | Path | None = None) -> str | None:
    """Check the CA and server key files before serving, so an unusable or lost one stops the
    start. With `rotate_missing`, a CA key that is not the one proxies were given (lost, or
    another CA's) is accepted: ca.crt gets the control plane's CA certificate, made anew when
    there is none. Returns what that means for proxies, else None. With `keys_dir`, the CA is
    the keys directory's (`xds-ca.crt`, `xds-ca.key`), which must be there."""
    directory = Path(state_dir) / DIRECTORY
    if keys_dir is not None:
        read_xds_ca(Path(keys_dir))
        if (directory / "server.pem").exists():
            _read_pair(directory / "server.pem")
        return None
    ca_file, public, server_file = directory / "ca.pem", ca_cert_path(state_dir), directory / "server.pem"
    ca_cert = _read_pair(ca_file)[0][0] if ca_file.exists() else None
    rotated = None
    try:
        _check_given(ca_file, public, ca_cert)
    except (KeyMissing, _OtherCa):
        if not rotate_missing:
            raise
        old = _given_ca(public)
        assert old is not None
        if ca_cert is None:
            create_private_once(ca_file, new_ca())  # the server certificate is reissued from it at start
            ca_cert = _read_pair(ca_file)[0][0]
        write_public(public, ca_cert.public_bytes(serialization.Encoding.PEM))
        rotated = (
            f"the xDS CA was replaced ({ROTATE_FLAG}): proxies that verify the control plane with the old CA "
            f"certificate (fingerprint {_fingerprint(old)}) cannot connect until they are given the new {public}"
        )
    if server_file.exists():
        _read_pair(server_file)
    return rotated


class _OtherCa(KeyFileUnusable):
    pass


def _check_given(ca_file: Path, public: Path, ca_cert: x509.Certificate | None) -> None:
    """Raise unless the CA in ca.pem (`ca_cert`, None when there is no ca.pem) is the one whose
    certificate proxies were given in ca.crt, or they were given none."""
    given = _given_ca(public)
    if given is None or given == ca_cert:
        return
    if ca_cert is None:
        raise KeyMissing(
            ca_file,
            f"the xDS CA key is missing, but {public} shows proxies were given its certificate (fingerprint "
            f"{_fingerprint(given)}): a new CA would lock them out. Restore ca.pem from a backup, or start "
            f"`reconciler serve {ROTATE_FLAG}` to make a new CA and give proxies the new {public}",
        )
    raise _OtherCa(
        ca_file,
        f"its CA certificate is not the CA certificate in {public} that proxies were given (fingerprint "
        f"{_fingerprint(given)}), so they would not trust this control plane. Put back the ca.pem that goes with it, "
        f"or start `reconciler serve {ROTATE_FLAG}` to give proxies this one",
    )


def _given_ca(public: Path) -> x509.Certificate | None:
    """The CA certificate proxies were given, None when there is none (or it is not readable:
    it is only a copy, rewritten from ca.pem)."""
    try:
        return x509.load_pem_x509_certificate(public.read_bytes())
    except (OSError, ValueError):
        return None


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()[:16]


def load_or_create(
    state_dir: str | Path, names: Sequence[str], *, now: float | None = None, keys_dir: str | Path | None = None
) -> XdsCertificate:
    """The CA (created once; with `keys_dir`, read from there) and a server certificate for
    `names` (reissued when needed), kept in the state directory: each replica has its own, all
    from the same CA, so a proxy trusts whichever replica it reaches.

    Raises `KeyFileUnusable` for a key file that cannot be used and `KeyMissing` when the CA
    key is gone but proxies were given its certificate (`check_state` rotates on request).
    """
    directory = ensure_state_dir(state_dir) / DIRECTORY
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)  # ca.crt must be readable by whoever starts the proxies
    ca_file = directory / "ca.pem"
    public = ca_cert_path(state_dir)
    if keys_dir is not None:
        ca_cert, ca_key = read_xds_ca(Path(keys_dir))
    else:
        if not ca_file.exists():
            _check_given(ca_file, public, None)
            create_private_once(ca_file, new_ca())
        (ca_cert, *_), ca_key = _read_pair(ca_file)
        _check_given(ca_file, public, ca_cert)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    if not public.exists() or public.read_bytes() != ca_pem:
        write_public(public, ca_pem)  # absent, or unreadable: it is only a copy

    t = now if now is not None else time.time()
    server_file = directory / "server.pem"
    existing = _read_pair(server_file) if server_file.exists() else None
    if existing is not None:
        leaf = existing[0][0]
        fresh = (
            leaf.issuer == ca_cert.subject
            and _names_of(leaf) == _canonical(names)
            and leaf.not_valid_after_utc.timestamp() - t > RENEW_BEFORE
            and _same_key(leaf, ca_key)
        )
        if not fresh:
            existing = None
    if existing is None:
        pem = _new_server(ca_cert, ca_key, names)
        write_private(server_file, pem)
        existing = _split(pem)
    certs, key = existing
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
