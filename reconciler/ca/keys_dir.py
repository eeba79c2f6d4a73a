"""The shared keys directory (`serve --keys-dir DIR`): one flat directory, a mounted Kubernetes Secret.

Every replica of an HA install reads the same keys from DIR and never generates or writes
anything there (a Secret is mounted read-only and updated by a symlink swap). A Secret is
flat, its keys are file names without '/', so the layout is flat too:

    admin-token                      the admin token of the API
    xds-ca.crt, xds-ca.key           the CA that signs each replica's xDS server certificate
                                     (xds-ca.crt is what `run-dataplane --ca-cert` is given)
    dataplane-token.<kid>.pem        token signing keys (RSA); the highest kid signs new tokens
    ca.<mesh>.<backend>.crt, .key    the builtin CA of a mesh's mTLS backend (a MeshIdentity
                                     with autogenerate: backend `meshidentity-<name>`)

`reconciler keys init --out DIR` makes them (mode 0600, never overwriting). What each replica
writes itself (CA history.json, its xDS server certificate, the mirror) stays in its state
directory.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from reconciler.ca.statefiles import KeyFileUnusable, KeyMissing, read_private_key

__all__ = [
    "ADMIN_TOKEN",
    "XDS_CA_CERT",
    "XDS_CA_KEY",
    "TOKEN_KEY_PREFIX",
    "INIT_HINT",
    "mesh_ca_files",
    "missing",
    "read_cert",
    "read_key",
    "read_xds_ca",
]

ADMIN_TOKEN = "admin-token"
XDS_CA_CERT = "xds-ca.crt"
XDS_CA_KEY = "xds-ca.key"
TOKEN_KEY_PREFIX = "dataplane-token."
"""Signing keys are `dataplane-token.<kid>.pem`."""

INIT_HINT = "run `reconciler keys init --out DIR --repo …` and update the Secret"


def mesh_ca_files(keys_dir: Path, mesh: str, backend: str) -> tuple[Path, Path]:
    """The certificate and key file of a mesh backend's builtin CA in the keys directory."""
    return keys_dir / f"ca.{mesh}.{backend}.crt", keys_dir / f"ca.{mesh}.{backend}.key"


def missing(path: Path, what: str) -> KeyMissing:
    """The error for a key the keys directory should hold and does not: names the file and the fix."""
    return KeyMissing(
        path,
        f"{what} is not in the keys directory {path.parent}: {INIT_HINT.replace('DIR', str(path.parent))} "
        "(keys are read from there, never generated)",
    )


def read_cert(path: Path) -> x509.Certificate:
    """A PEM certificate of the keys directory, or `KeyFileUnusable` saying why not."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as e:
        raise KeyFileUnusable(path, e.strerror or str(e)) from None
    except ValueError:
        raise KeyFileUnusable(path, "not a PEM certificate") from None


def read_key(path: Path) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A private key of the keys directory, read without touching its mode (the mount is read-only)."""
    key = read_private_key(path, fix_mode=False)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise KeyFileUnusable(path, "only RSA and ECDSA keys are supported")
    return key


def read_xds_ca(keys_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The xDS CA of the keys directory: `KeyMissing` when a file is not there, else
    `KeyFileUnusable` for one that cannot be used."""
    cert_file, key_file = keys_dir / XDS_CA_CERT, keys_dir / XDS_CA_KEY
    for path in (cert_file, key_file):
        if not path.exists():
            raise missing(path, f"the xDS CA ({XDS_CA_CERT} and {XDS_CA_KEY})")
    cert, key = read_cert(cert_file), read_key(key_file)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyFileUnusable(key_file, "the xDS CA key must be ECDSA (`reconciler keys init` makes one)")
    if key.public_key() != cert.public_key():
        raise KeyFileUnusable(key_file, f"the private key does not match {cert_file.name}")
    return cert, key
