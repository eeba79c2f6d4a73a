"""The control plane's dataplane-token signing keys: `<state>/dataplane-tokens/<kid>.pem`.

The key storage behind `reconciler.ca.tokens` (which is pure): keys are created once (mode
0600, through `reconciler.ca.statefiles`), reused across restarts, and each has a public
record `<kid>.pub` so a key that vanished is noticed instead of silently replaced.

`SigningKeys.open_shared(DIR)` reads the keys of a shared keys directory instead
(`DIR/dataplane-token.<kid>.pem`, `serve --keys-dir`): nothing is made or recorded there, a key
added there is read when a token names it, and one removed there stops verifying.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from reconciler.ca.keys_dir import TOKEN_KEY_PREFIX, missing
from reconciler.ca.statefiles import (
    ROTATE_FLAG,
    KeyFileUnusable,
    KeyMissing,
    create_private_once,
    ensure_state_dir,
    read_private_key,
    write_public,
)
from reconciler.ca.token_errors import TokenError

__all__ = ["KEY_DIRECTORY", "SigningKeys"]

log = logging.getLogger(__name__)

KEY_DIRECTORY = "dataplane-tokens"
_KID = re.compile(r"^[1-9][0-9]{0,8}$")


class SigningKeys:
    """The control plane's token signing keys: `<state>/dataplane-tokens/<kid>.pem`.

    `kid` is a serial number, never reused; the newest key signs new tokens and every key
    present verifies. Each key has a public record, `<kid>.pub` (its public key), so a key
    that vanished is noticed: `open` refuses with `KeyMissing` rather than let every token it
    signed fail, unless `rotate_missing` accepts the loss (the record becomes `<kid>.lost`,
    and a new key is made when none is left). To invalidate every token a key signed on
    purpose, remove both `<kid>.pem` and `<kid>.pub`.

    A verifier that meets an unknown `kid` looks at the directory again, so a key added by
    another process is picked up without a restart; one it cannot use there is reported by
    `unusable()` instead of failing the verification.
    """

    def __init__(self, directory: Path, keys: Mapping[str, rsa.RSAPrivateKey], *, shared: bool = False) -> None:
        self.directory = directory
        self.shared = shared
        """A keys directory (`serve --keys-dir`): keys are `dataplane-token.<kid>.pem`, read without
        changing anything there, and a key file removed there stops verifying."""
        self._prefix = TOKEN_KEY_PREFIX if shared else ""
        self._keys: dict[str, rsa.RSAPrivateKey] = dict(keys)
        self._unusable: dict[str, KeyFileUnusable] = {}
        self.lost: tuple[str, ...] = ()
        """Keys whose loss `open(rotate_missing=True)` accepted: their tokens are refused."""

    @classmethod
    def open(cls, state_dir: str | Path, *, create: bool = True, rotate_missing: bool = False) -> SigningKeys:
        """The keys of a state directory; with `create`, the first key is made if there is none.

        Raises `KeyFileUnusable` for a key file that cannot be used and `KeyMissing` for a key
        whose public record outlived it (unless `rotate_missing`).
        """
        directory = ensure_state_dir(state_dir) / KEY_DIRECTORY if create else Path(state_dir) / KEY_DIRECTORY
        keys = cls(directory, {})
        keys.reload(strict=True)
        lost = keys._lost()
        if lost and not rotate_missing:
            kid = lost[0]
            raise KeyMissing(
                directory / f"{kid}.pem",
                f"signing key {kid} is missing, but {kid}.pub shows it was made: every token it signed would be refused. "
                f"Restore {kid}.pem from a backup; or start `reconciler serve {ROTATE_FLAG}` to accept the loss (tokens of "
                f"key {kid} stop working: issue new ones with `reconciler token issue`); or, if you removed the key on "
                f"purpose, remove {kid}.pub too",
            )
        for kid in lost:
            os.replace(directory / f"{kid}.pub", directory / f"{kid}.lost")
        keys.lost = tuple(lost)
        while not keys._keys and create:
            # The kid is chosen before looking again, so a first key another process made in between is
            # read rather than followed by a second one; whoever links the file first makes it.
            kid = keys._next_kid()
            keys.reload(strict=True)
            if not keys._keys:
                keys._create(kid)
                keys.reload(strict=True)
        if create:
            keys._record_public()
        return keys

    @classmethod
    def open_shared(cls, keys_dir: str | Path) -> SigningKeys:
        """The keys of a keys directory, never created there; none at all is `KeyMissing`."""
        keys = cls(Path(keys_dir), {}, shared=True)
        keys.reload(strict=True)
        if not keys._keys:
            raise missing(keys.file(1), f"no token signing key ({TOKEN_KEY_PREFIX}<kid>.pem)")
        return keys

    def file(self, kid: str | int) -> Path:
        """The key file of `kid`."""
        return self.directory / f"{self._prefix}{kid}.pem"

    def _kid_of(self, path: Path) -> str | None:
        kid = path.stem[len(self._prefix) :] if path.stem.startswith(self._prefix) else ""
        return kid if _KID.match(kid) else None

    def reload(self, *, strict: bool = False) -> None:
        """Load key files not loaded yet. A file that cannot be used raises `KeyFileUnusable`
        with `strict`; otherwise it is skipped and reported by `unusable()`."""
        if not self.directory.is_dir():
            return
        if self.shared:  # a key taken out of the Secret no longer verifies (rotation's last step)
            self._keys = {kid: key for kid, key in self._keys.items() if self.file(kid).exists()}
        for path in sorted(self.directory.glob(f"{self._prefix}*.pem")):
            kid = self._kid_of(path)
            if kid is None or kid in self._keys:
                continue
            try:
                key = read_private_key(path, fix_mode=not self.shared)
                if not isinstance(key, rsa.RSAPrivateKey):
                    raise KeyFileUnusable(
                        path, "not an RSA private key: token signing keys are RSA (`reconciler token rotate-key` makes one)"
                    )
            except KeyFileUnusable as e:
                if strict:
                    raise
                if str(self._unusable.get(kid)) != str(e):
                    log.warning("signing key file cannot be used", extra={"path": str(path), "error": e.why})
                self._unusable[kid] = e
                continue
            self._unusable.pop(kid, None)
            self._keys[kid] = key
        self._unusable = {kid: e for kid, e in self._unusable.items() if e.path.exists() or e.path.is_symlink()}

    def unusable(self) -> list[str]:
        """What in the key directory cannot be used now (and whose tokens are refused), one sentence each."""
        self.reload()
        return [f"{e}; tokens signed with key {kid} are refused until it is fixed" for kid, e in sorted(self._unusable.items())]

    def add_key(self) -> str:
        """Create the next signing key (rotation); returns its kid. Safe against a concurrent creator."""
        while True:
            self.reload()
            kid = self._next_kid()
            if self._create(kid):
                self.reload()
                return kid

    def _next_kid(self) -> str:
        # Past every kid ever recorded: a token of a lost or removed key never meets a new key of its kid.
        kids = (
            [self._kid_of(p) for p in self.directory.glob("*") if p.suffix in (".pem", ".pub", ".lost")] if self.directory.is_dir() else []
        )
        seen = [int(k) for k in kids if k is not None]
        return str(max([0, *seen, *(int(k) for k in self._keys)]) + 1)

    def _lost(self) -> list[str]:
        if self.shared or not self.directory.is_dir():
            return []
        kids = {p.stem for p in self.directory.glob("*.pub") if _KID.match(p.stem)}
        return sorted((k for k in kids if k not in self._keys and not (self.directory / f"{k}.pem").exists()), key=int)

    def _create(self, kid: str) -> bool:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        try:
            if not create_private_once(self.file(kid), pem):
                return False
            if not self.shared:  # a Secret holds keys only: a key lost there is noticed at start
                write_public(self.directory / f"{kid}.pub", _public_pem(key))
        except OSError as e:  # e.g. a read-only key directory shared by replicas
            raise KeyFileUnusable(self.file(kid), f"cannot create a signing key: {e.strerror or e}") from None
        return True

    def _record_public(self) -> None:
        """Write the public record of keys made before records existed (or by a copy)."""
        for kid, key in self._keys.items():
            record = self.directory / f"{kid}.pub"
            if not record.exists():
                try:
                    write_public(record, _public_pem(key))
                except OSError as e:  # a read-only directory: a lost key there is not noticed
                    log.warning("cannot record a signing key's public key", extra={"path": str(record), "error": e.strerror})

    @property
    def latest(self) -> str:
        if not self._keys:
            raise TokenError(f"no signing key in {self.directory}")
        return max(self._keys, key=int)

    def key_ids(self) -> list[str]:
        return sorted(self._keys, key=int)

    def sign(self, data: bytes, kid: str) -> bytes:
        return self._keys[kid].sign(data, padding.PKCS1v15(), hashes.SHA256())

    def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        key = self._keys.get(kid)
        if key is None or (self.shared and not self.file(kid).exists()):  # added, or taken out of the Secret
            self.reload()
            key = self._keys.get(kid)
        return key.public_key() if key is not None else None


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
