"""Where builtin CA keys live: the state directory, mode 0600, never git.

Layout: `<state>/ca/<mesh>/<backend>/ca.crt` and `ca.key`, plus `<state>/ca/<mesh>/history.json`
recording CAs the mesh stopped using and when, so that proxies keep trusting a retired CA
while they switch to certificates from the new one. Without a state directory (plan, render)
CAs live in memory for the process.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from reconciler.ca.authority import Authority, generate_root, load_authority

__all__ = ["CaStore", "Retired"]


@dataclass(frozen=True, slots=True)
class Retired:
    fingerprint: str
    cert_pem: bytes
    retired_at: float


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_suffix(path.suffix + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(path.with_suffix(path.suffix + ".tmp"), path)
    os.chmod(path, 0o600)


class CaStore:
    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(state_dir) / "ca" if state_dir is not None else None
        self._memory: dict[tuple[str, str], Authority] = {}
        self._active: dict[str, Authority] = {}
        self._retired: dict[str, list[Retired]] = {}
        self._lock = threading.Lock()

    # -- builtin CAs ----------------------------------------------------------------------
    def builtin(self, mesh: str, backend: str, *, rsa_bits: int, validity: float) -> Authority:
        """The builtin CA of a mesh backend: loaded if it exists, else generated and saved."""
        with self._lock:
            cached = self._memory.get((mesh, backend))
            if cached is not None:
                return cached
            authority = self._load(mesh, backend)
            if authority is None:
                authority = generate_root(mesh, backend, rsa_bits=rsa_bits, validity=validity)
                self._save(mesh, backend, authority)
            self._memory[(mesh, backend)] = authority
            return authority

    def _dir(self, mesh: str, backend: str) -> Path | None:
        return self.root / mesh / backend if self.root is not None else None

    def _load(self, mesh: str, backend: str) -> Authority | None:
        d = self._dir(mesh, backend)
        if d is None or not (d / "ca.crt").exists() or not (d / "ca.key").exists():
            return None
        return load_authority(backend, (d / "ca.crt").read_bytes(), (d / "ca.key").read_bytes())

    def _save(self, mesh: str, backend: str, authority: Authority) -> None:
        d = self._dir(mesh, backend)
        if d is None:
            return
        _write_private(d / "ca.key", authority.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (d / "ca.crt").write_bytes(authority.cert_pem)

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

    def _persisted_active(self, mesh: str) -> Authority | None:
        active = self._read_history(mesh).get("active")
        if not isinstance(active, dict):
            return None
        return _CertOnly(str(active.get("name", "")), str(active.get("cert", "")).encode())  # type: ignore[return-value]

    def _persisted_retired(self, mesh: str) -> list[Retired]:
        out = []
        for item in self._read_history(mesh).get("retired", []) or []:  # type: ignore[union-attr]
            if isinstance(item, dict):
                out.append(Retired(str(item["fingerprint"]), str(item["cert"]).encode(), float(item["retiredAt"])))
        return out

    def _persist(self, mesh: str, active: Authority) -> None:
        path = self._history(mesh)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc = {
            "active": {"name": active.name, "fingerprint": active.fingerprint, "cert": active.cert_pem.decode()},
            "retired": [{"fingerprint": r.fingerprint, "cert": r.cert_pem.decode(), "retiredAt": r.retired_at} for r in self._retired.get(mesh, [])],
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class _CertOnly:
    """A CA known only by its certificate (read back from history): enough to retire it."""

    name: str
    cert_pem: bytes

    @property
    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(self.cert_pem).hexdigest()[:16]
