"""Files of the state directory that must not leak: private keys (mode 0600), never in git.

Several processes may reach the same state directory at once (`serve` and `token issue`,
two `serve` replicas sharing a volume), so a key is created once: written to a private
temporary file and linked into place, and whoever links second reads the winner's key.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["ensure_state_dir", "create_private_once", "write_private", "write_public", "read_private"]

log = logging.getLogger(__name__)

_GITIGNORE = "# mesh-reconciler state: private keys and caches, never commit\n*\n"


def ensure_state_dir(state_dir: str | os.PathLike[str]) -> Path:
    """The state directory, created if needed, with a `.gitignore` ignoring everything in it.

    The default state directory (`.reconciler`) sits in the current directory, which may be
    a work tree of the configuration repository; the `.gitignore` keeps `git add -A` from
    committing keys.
    """
    root = Path(state_dir)
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        try:
            write_public(ignore, _GITIGNORE.encode())
        except OSError:  # a read-only state directory still works; only the guard is missing
            log.warning("cannot write .gitignore in the state directory", extra={"path": str(ignore)})
    return root


def _private_temp(directory: Path, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-")  # mkstemp creates it 0600
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(name)


def create_private_once(path: Path, data: bytes) -> bool:
    """Create `path` (mode 0600) holding `data` unless it exists; True when this call made it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = _private_temp(path.parent, data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = _private_temp(path.parent, data)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, mode 0644 (certificates, not keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _private_temp(path.parent, data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read_private(path: Path) -> bytes:
    """Read a key file; one that others can read is made private again, with a warning."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("private key file was readable by others; mode set to 0600", extra={"path": str(path), "mode": oct(mode)})
        os.chmod(path, 0o600)
    return path.read_bytes()
