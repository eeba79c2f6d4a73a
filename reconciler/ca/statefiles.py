"""Files of the state directory that must not leak or half-exist: private keys (mode 0600), never in git.

Every write goes through `_write_temp`: the bytes go to a fresh temporary file in the target's
directory (made by `mkstemp`: exclusive, mode 0600 from the first byte, never a name someone
planted), are fsynced, and the file is renamed (`write_private`, `write_public`) or linked
(`create_private_once`) into place; then the directory is fsynced so the new name survives a
power cut. A reader sees the old file or the new one, never a half-written or readable key.

Several processes may reach the same state directory at once (`serve` and `token issue`,
`serve` and `reconcile --out --state-dir`, replicas sharing a volume), so a key is created
once: linked into place, and whoever links second reads the winner's key. What takes more than
one file (a CA's certificate and key) is created under `exclusive`, a lock file beside it.

A key that cannot be used raises `KeyFileUnusable`; one that is gone while other state shows
it existed raises `KeyMissing`. Both say "cannot use <path>: <why>" and are `StateFileError`s,
which commands turn into exit code 2.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = [
    "ROTATE_FLAG",
    "StateFileError",
    "KeyFileUnusable",
    "KeyMissing",
    "ensure_state_dir",
    "create_private_once",
    "write_private",
    "write_public",
    "read_private",
    "read_private_key",
    "exclusive",
    "move_aside",
]

log = logging.getLogger(__name__)

ROTATE_FLAG = "--rotate-missing-keys"
"""The `serve` option that accepts replacing a lost key (and locking out what depended on it)."""

_GITIGNORE = "# mesh-reconciler state: private keys and caches, never commit\n*\n"


class StateFileError(ValueError):
    """A file of the state directory cannot be used: "cannot use <path>: <why>"."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"cannot use {path}: {why}")
        self.path = path
        self.why = why


class KeyFileUnusable(StateFileError):
    """A key file that cannot be read or is not the key it should be."""


class KeyMissing(StateFileError):
    """A key that other state shows existed (its certificate, its public record) is gone."""


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


def _private_dir(directory: Path) -> None:
    # Only a directory made here is set to 0700: an existing one may be shared on purpose
    # (xds-tls/ holds the public ca.crt).
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(directory: Path, data: bytes, mode: int = 0o600) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-")  # O_EXCL, mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if mode != 0o600:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def create_private_once(path: Path, data: bytes) -> bool:
    """Create `path` (mode 0600) holding `data` unless it exists; True when this call made it."""
    _private_dir(path.parent)
    tmp = _write_temp(path.parent, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, mode 0600."""
    _private_dir(path.parent)
    _replace(path, _write_temp(path.parent, data))


def write_public(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, mode 0644 (certificates, not keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, _write_temp(path.parent, data, 0o644))


def _replace(path: Path, tmp: Path) -> None:
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def read_private(path: Path, *, fix_mode: bool = True) -> bytes:
    """Read a key file; one that others can read is made private again (unless not `fix_mode`:
    a shared, read-only keys directory is never changed), with a warning.

    Raises `KeyFileUnusable` when it cannot be read (a directory, a permission, an I/O error).
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileUnusable(path, os.strerror(errno.EISDIR) if stat.S_ISDIR(info.st_mode) else "not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077 and not fix_mode:
            log.warning("private key file is readable by others", extra={"path": str(path), "mode": oct(mode)})
        elif mode & 0o077:
            try:
                os.chmod(path, 0o600)
                log.warning("private key file was readable by others; mode set to 0600", extra={"path": str(path), "mode": oct(mode)})
            except OSError as e:  # a read-only mount: its owner chose the mode
                log.warning("private key file is readable by others", extra={"path": str(path), "mode": oct(mode), "error": e.strerror})
        return path.read_bytes()
    except OSError as e:
        raise KeyFileUnusable(path, e.strerror or str(e)) from None


def read_private_key(path: Path, *, fix_mode: bool = True) -> PrivateKeyTypes:
    """The unencrypted PEM private key in `path`, or `KeyFileUnusable` saying why not."""
    data = read_private(path, fix_mode=fix_mode)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        hint = " (it is encrypted)" if isinstance(e, TypeError) else ""
        raise KeyFileUnusable(path, f"not a PEM private key{hint}") from None


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created, mode 0600): one creator at a time,
    across processes on this host."""
    _private_dir(lock_file.parent)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def move_aside(path: Path, label: str) -> Path:
    """Rename `path` to `<path>.<label>` (or `.<label>-2`, …) to keep it for the record."""
    for n in range(1, 1000):
        target = path.with_name(f"{path.name}.{label}" + (f"-{n}" if n > 1 else ""))
        if not target.exists():
            os.rename(path, target)
            _fsync_dir(path.parent)
            return target
    raise FileExistsError(errno.EEXIST, "no free name", str(path))
