"""Where builtin CA keys live: the state directory, mode 0600, never git.

Layout: `<state>/ca/<mesh>/<backend>/ca.crt` and `ca.key`, plus `<state>/ca/<mesh>/history.json`
recording the CA the mesh signs with and the CAs it stopped using and when, so that proxies
keep trusting a retired CA while they switch to certificates from the new one. Without a state
directory (plan, render) CAs live in memory for the process.

A CA is made once, under a lock file (`<state>/ca/<mesh>/.lock`), key first and certificate
second, each written atomically (`statefiles`). A CA that proxies may depend on is never made
again behind their back: when `ca.crt` (or history.json, for the mesh's active builtin CA)
shows a CA existed and its key is gone, `builtin` raises `CaKeyMissing`; `check_keys` finds
that at start, and with `rotate_missing` sets the lost CA aside (`<backend>.lost-<time>/`) so
the next build makes a new one while the old certificate stays trusted through history.json.

With a keys directory (`serve --keys-dir`, reconciler/ca/keys_dir.py) builtin CAs are read from
`<keys>/ca.<mesh>.<backend>.crt|.key` and never made: one that is not there is `CaNotInKeysDir`,
a CaError, so the commit that needs it is rejected. history.json stays in the state directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from reconciler.ca.authority import Authority, CaError, generate_root
from reconciler.ca.keys_dir import INIT_HINT, mesh_ca_files
from reconciler.ca.statefiles import (
    ROTATE_FLAG,
    KeyFileUnusable,
    KeyMissing,
    ensure_state_dir,
    exclusive,
    move_aside,
    read_private_key,
    write_private,
    write_public,
)
from reconciler.x509_checks import ca_certificate_problems

__all__ = ["CaStore", "Retired", "CaKeyUnusable", "CaKeyMissing", "CaNotInKeysDir"]

CERT_FILE = "ca.crt"
KEY_FILE = "ca.key"


class CaKeyUnusable(CaError, KeyFileUnusable):
    """A builtin CA's certificate or key file cannot be read, or they do not belong together."""


class CaKeyMissing(CaError, KeyMissing):
    """A builtin CA that proxies may depend on lost its key (or its certificate)."""


class CaNotInKeysDir(CaKeyMissing):
    """A mesh needs a builtin CA that the keys directory does not hold (the commit is rejected)."""


@dataclass(frozen=True, slots=True)
class Retired:
    fingerprint: str
    cert_pem: bytes
    retired_at: float


class CaStore:
    def __init__(self, state_dir: str | os.PathLike[str] | None = None, keys_dir: str | os.PathLike[str] | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.keys_dir = Path(keys_dir) if keys_dir is not None else None
        """Where builtin CAs are read from, never generated (`serve --keys-dir`); history stays in the state directory."""
        self.root = self.state_dir / "ca" if self.state_dir is not None else None
        self._memory: dict[tuple[str, str], Authority] = {}
        self._builtin: set[str] = set()
        """Fingerprints of the builtin CAs handed out: marked as such in history.json."""
        self._active: dict[str, Authority] = {}
        self._retired: dict[str, list[Retired]] = {}
        self._lock = threading.Lock()

    # -- builtin CAs ----------------------------------------------------------------------
    def builtin(self, mesh: str, backend: str, *, rsa_bits: int, validity: float) -> Authority:
        """The builtin CA of a mesh backend: loaded if it exists, else generated and saved.

        Raises `CaKeyUnusable` for files that cannot be used and `CaKeyMissing` for a CA
        whose key is gone.
        """
        with self._lock:
            cached = self._memory.get((mesh, backend))
            if cached is not None:
                return cached
            d = self._dir(mesh, backend)
            if self.keys_dir is not None:
                authority = self._load_shared(mesh, backend)
            elif d is None:
                authority = generate_root(mesh, backend, rsa_bits=rsa_bits, validity=validity)
            else:
                loaded = self._load(mesh, backend, d) if (d / CERT_FILE).exists() and (d / KEY_FILE).exists() else None
                if loaded is None:  # decided under the lock: another process may be making it
                    with exclusive(self._lock_file(mesh)):
                        loaded = self._load(mesh, backend, d) or self._create(mesh, backend, d, rsa_bits, validity)
                authority = loaded
            self._memory[(mesh, backend)] = authority
            self._builtin.add(authority.fingerprint)
            return authority

    def check_keys(self, *, rotate_missing: bool = False) -> list[str]:
        """Load every builtin CA of the state directory, so an unusable or lost one stops the
        start rather than a later build. With `rotate_missing`, a lost CA is set aside so the
        next build makes a new one; returns what was set aside, one sentence each.
        With a keys directory, its CAs are checked instead (a lost one cannot be replaced there)."""
        if self.keys_dir is not None:
            self._check_shared()
            return []
        if self.root is None or not self.root.is_dir():
            return []
        rotated = []
        for mesh_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            mesh = mesh_dir.name
            backends = {p.name for p in mesh_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and ".lost-" not in p.name}
            active = self._history_builtin(mesh)
            if active:
                backends.add(active)
            for backend in sorted(backends):
                with exclusive(self._lock_file(mesh)):
                    try:
                        self._load(mesh, backend, mesh_dir / backend)
                    except CaKeyMissing as lost:
                        if not rotate_missing:
                            raise
                        rotated.append(self._set_aside(mesh, backend, lost))
        return rotated

    def _dir(self, mesh: str, backend: str) -> Path | None:
        return self.root / mesh / backend if self.root is not None else None

    def _lock_file(self, mesh: str) -> Path:
        assert self.root is not None
        return self.root / mesh / ".lock"

    def _load(self, mesh: str, backend: str, d: Path) -> Authority | None:
        """The CA in `d`; None when there is none to load and none that proxies may depend on."""
        cert_file, key_file = d / CERT_FILE, d / KEY_FILE
        has_cert, has_key = cert_file.exists(), key_file.exists()
        recorded = self._history_builtin(mesh) == backend
        what = f"the builtin CA {backend} of mesh {mesh}"
        if has_cert and not has_key:
            raise CaKeyMissing(
                key_file, f"the key of {what} is missing, but {cert_file} shows the CA existed: {_LOST_CA_HINT.format(dir=d, mesh=mesh)}"
            )
        if not has_cert and recorded:
            missing, part = (cert_file, "certificate") if has_key else (key_file, "key")
            history = self._history(mesh)
            raise CaKeyMissing(
                missing,
                f"the {part} of {what} is missing, but {history} records it as the CA the mesh signs with: {_LOST_CA_HINT.format(dir=d, mesh=mesh)}",
            )
        if not has_cert:
            return None  # nothing yet, or a key whose certificate was never written: made anew
        return _read_authority(backend, cert_file, key_file, hint=_UNUSABLE_HINT)

    def _load_shared(self, mesh: str, backend: str) -> Authority:
        """The CA from the keys directory, never generated: one that is not there is a CaError
        (the commit that needs it is rejected; the last good one keeps serving)."""
        assert self.keys_dir is not None
        cert_file, key_file = mesh_ca_files(self.keys_dir, mesh, backend)
        for path in (cert_file, key_file):
            if not path.exists():
                raise CaNotInKeysDir(
                    path,
                    f"mesh {mesh} uses the builtin CA of backend {backend}, which is not in the keys directory {self.keys_dir} "
                    f"(expected {cert_file.name} and {key_file.name}): {INIT_HINT.replace('DIR', str(self.keys_dir))}",
                )
        return _read_authority(backend, cert_file, key_file, hint=_SHARED_HINT, fix_mode=False)

    def _check_shared(self) -> None:
        """Every CA pair of the keys directory loads (a certificate without its key stops the start)."""
        assert self.keys_dir is not None
        for cert_file in sorted(self.keys_dir.glob("ca.*.crt")):
            key_file = cert_file.with_suffix(".key")
            if not key_file.exists():
                raise CaKeyMissing(key_file, f"{cert_file.name} has no key beside it in the keys directory{_SHARED_HINT}")
            _read_authority(cert_file.name, cert_file, key_file, hint=_SHARED_HINT, fix_mode=False)

    def _create(self, mesh: str, backend: str, d: Path, rsa_bits: int, validity: float) -> Authority:
        assert self.state_dir is not None
        ensure_state_dir(self.state_dir)
        authority = generate_root(mesh, backend, rsa_bits=rsa_bits, validity=validity)
        # Key first: a certificate on disk means proxies may trust it, so it never comes
        # without its key; a key alone (a crash in between) is made anew next time.
        write_private(d / KEY_FILE, authority.key_pem())
        write_public(d / CERT_FILE, authority.cert_pem)
        return authority

    def _set_aside(self, mesh: str, backend: str, lost: CaKeyMissing) -> str:
        """Move a lost CA's directory aside (kept for the record) and drop its mark in
        history.json, so the next build makes a new CA. Its certificate stays in history.json
        (as the active CA, which the new one retires, or as retired now), so proxies keep
        trusting it for one certificate lifetime while they get certificates from the new one."""
        d = self._dir(mesh, backend)
        assert d is not None
        old_pem = (d / CERT_FILE).read_bytes() if (d / CERT_FILE).is_file() else None
        kept = move_aside(d, time.strftime("lost-%Y%m%dT%H%M%SZ", time.gmtime())) if d.exists() else None
        doc = self._read_history(mesh)
        active = doc.get("active")
        if isinstance(active, dict) and active.get("name") == backend:
            active.pop("builtin", None)
            old_pem = None if old_pem is None or str(active.get("cert", "")).encode() == old_pem else old_pem
        if old_pem is not None:
            old = _CertOnly(backend, old_pem)
            retired = [r for r in _entries(doc, "retired") if r.get("fingerprint") != old.fingerprint]
            doc["retired"] = [*retired, {"fingerprint": old.fingerprint, "cert": old_pem.decode(), "retiredAt": time.time()}]
        path = self._history(mesh)
        assert path is not None
        write_public(path, json.dumps(doc, indent=2).encode())
        self._memory.pop((mesh, backend), None)
        self._retired.pop(mesh, None)
        kept_text = f" (the old one is kept in {kept})" if kept else ""
        return (
            f"the builtin CA {backend} of mesh {mesh} lost its {lost.path.name}{kept_text}: the next build makes a new CA "
            f"and gives proxies new certificates, and the old CA stays trusted for one certificate lifetime; "
            f"anything else that trusts only the old CA certificate must be given the new {d / CERT_FILE}"
        )

    # -- rotation ---------------------------------------------------------------------------
    def activate(self, mesh: str, authority: Authority, now: float | None = None) -> None:
        """Record the CA a mesh signs with now; a different previous one becomes retired."""
        with self._lock:
            previous = self._active.get(mesh) or self._persisted_active(mesh)
            self._active[mesh] = authority
            if previous is not None and previous.fingerprint != authority.fingerprint:
                retired = self.retired(mesh)
                retired.append(Retired(previous.fingerprint, previous.cert_pem, now if now is not None else time.time()))
                self._retired[mesh] = retired
            self._persist(mesh, authority)

    def retired(self, mesh: str) -> list[Retired]:
        if mesh not in self._retired:
            self._retired[mesh] = self._persisted_retired(mesh)
        return list(self._retired[mesh])

    def _history(self, mesh: str) -> Path | None:
        return self.root / mesh / "history.json" if self.root is not None else None

    def _read_history(self, mesh: str) -> dict[str, object]:
        path = self._history(mesh)
        if path is None or not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _history_builtin(self, mesh: str) -> str | None:
        """The backend of the mesh's active CA when history.json marks it as a builtin one."""
        active = self._read_history(mesh).get("active")
        return str(active.get("name")) if isinstance(active, dict) and active.get("builtin") is True else None

    def _persisted_active(self, mesh: str) -> Authority | None:
        active = self._read_history(mesh).get("active")
        if not isinstance(active, dict):
            return None
        return _CertOnly(str(active.get("name", "")), str(active.get("cert", "")).encode())  # type: ignore[return-value]

    def _persisted_retired(self, mesh: str) -> list[Retired]:
        out = []
        for item in _entries(self._read_history(mesh), "retired"):
            try:
                out.append(Retired(str(item["fingerprint"]), str(item["cert"]).encode(), float(str(item["retiredAt"]))))
            except (KeyError, ValueError):  # a damaged entry: that CA is simply no longer trusted
                continue
        return out

    def _persist(self, mesh: str, active: Authority) -> None:
        path = self._history(mesh)
        if path is None:
            return
        entry: dict[str, object] = {"name": active.name, "fingerprint": active.fingerprint, "cert": active.cert_pem.decode()}
        if active.fingerprint in self._builtin:
            entry["builtin"] = True  # so a lost key is noticed even if its directory vanished
        doc = {
            "active": entry,
            # retired(), not _retired: what earlier processes retired is kept, not overwritten
            "retired": [{"fingerprint": r.fingerprint, "cert": r.cert_pem.decode(), "retiredAt": r.retired_at} for r in self.retired(mesh)],
        }
        write_public(path, json.dumps(doc, indent=2).encode())


_LOST_CA_HINT = (
    "proxies hold certificates it signed. Restore the file from a backup, or start `reconciler serve "
    + ROTATE_FLAG
    + "` to make a new CA (proxies get new certificates; the old CA stays trusted for one certificate lifetime), "
    "or remove {dir} if mesh {mesh} no longer uses it"
)
_SHARED_HINT = f" (in the keys directory, which is never written: fix the Secret; {INIT_HINT} makes missing keys)"
_UNUSABLE_HINT = f"; restore it from a backup, or remove the CA's files and start `reconciler serve {ROTATE_FLAG}` to make a new CA"


def _entries(doc: dict[str, object], key: str) -> list[dict[str, object]]:
    items = doc.get(key)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _public_der(item: PrivateKeyTypes | x509.Certificate) -> bytes:
    return item.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True, slots=True)
class _CertOnly:
    """A CA known only by its certificate (read back from history): enough to retire it."""

    name: str
    cert_pem: bytes

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.cert_pem).hexdigest()[:16]


def _read_authority(backend: str, cert_file: Path, key_file: Path, *, hint: str, fix_mode: bool = True) -> Authority:
    """A CA from its certificate and key files, each problem naming its file."""
    try:
        cert_pem = cert_file.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
    except OSError as e:
        raise CaKeyUnusable(cert_file, f"{e.strerror or e}{hint}") from None
    except ValueError:
        raise CaKeyUnusable(cert_file, f"not a PEM certificate{hint}") from None
    try:
        key = read_private_key(key_file, fix_mode=fix_mode)
    except KeyFileUnusable as e:
        raise CaKeyUnusable(key_file, e.why + hint) from None
    if _public_der(key) != _public_der(cert):
        raise CaKeyUnusable(key_file, f"the private key does not match {cert_file}{hint}")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise CaKeyUnusable(key_file, f"only RSA and ECDSA keys are supported{hint}")
    problems = ca_certificate_problems(cert)
    if problems:
        raise CaKeyUnusable(cert_file, "; ".join(problems) + hint)
    # The checks of load_authority, each naming its file; the key is parsed (and, RSA,
    # validated: about 30 ms) once.
    return Authority(backend, cert.public_bytes(Encoding.PEM), key)
