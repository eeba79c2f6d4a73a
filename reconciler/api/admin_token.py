"""The admin token: what every API call that changes what is served must present.

`serve` makes a random token on its first start and keeps it in `<state-dir>/admin-token`
(mode 0600, created once: replicas or a concurrent `serve` sharing the directory read the
winner's token); with `serve --keys-dir DIR` it is read from `DIR/admin-token`, never made. Callers send it as `Authorization: Bearer <token>`; the CLI's `--server`
commands read it from `--admin-token-file`, `$RECONCILER_ADMIN_TOKEN` or `--state-dir`.

A token has an id, the first 12 hex digits of its SHA-256, which is safe to log: the log and
the pin's reflog name the id of the token that asked for each change, never the token.

This module has no HTTP in it, so the CLI can use it without importing the server.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.ca.statefiles import StateFileError, create_private_once, ensure_state_dir, read_private

__all__ = [
    "AdminToken",
    "AdminTokenError",
    "TOKEN_FILE",
    "TOKEN_ENV",
    "token_id",
    "load_or_create",
    "load_shared",
    "find_for_client",
    "ClientToken",
]

TOKEN_FILE = "admin-token"
"""Its name in the state directory."""
TOKEN_ENV = "RECONCILER_ADMIN_TOKEN"
"""The environment variable the CLI reads it from (after `--admin-token-file`)."""
DEFAULT_STATE_DIR = ".reconciler"
"""`serve --state-dir`'s default, where the CLI looks last."""


class AdminTokenError(Exception):
    """The token file cannot be read or is empty (serve and the CLI exit with code 2)."""


def token_id(token: str) -> str:
    """An id that names the token in logs without revealing it: 12 hex digits of its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class AdminToken:
    value: str = field(repr=False)
    path: Path

    @property
    def id(self) -> str:
        return token_id(self.value)

    def accepts(self, authorization: str | None) -> bool:
        """Whether an `Authorization` header value carries this token (`Bearer <token>`), compared
        in constant time."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self.value.encode())


def load_or_create(state_dir: str | os.PathLike[str]) -> AdminToken:
    """The state directory's token, made (random, 256 bits) when there is none."""
    path = ensure_state_dir(state_dir) / TOKEN_FILE
    try:
        create_private_once(path, (secrets.token_urlsafe(32) + "\n").encode())
        value = read_private(path).decode().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise AdminTokenError(f"cannot read the admin token {path}: {getattr(e, 'strerror', None) or e}") from None
    if not value:
        raise AdminTokenError(f"the admin token file {path} is empty: delete it and `serve` makes a new one")
    return AdminToken(value, path)


def load_shared(keys_dir: str | os.PathLike[str]) -> AdminToken:
    """The token of a keys directory (`serve --keys-dir`), never made there: every replica
    accepts the same one."""
    path = Path(keys_dir) / TOKEN_FILE
    if not path.exists():
        raise AdminTokenError(
            f"cannot use {path}: the admin token is not in the keys directory: run `reconciler keys init --out {keys_dir}`"
        )
    try:
        value = read_private(path, fix_mode=False).decode().strip()
    except (StateFileError, UnicodeDecodeError) as e:
        raise AdminTokenError(f"cannot read the admin token {path}: {getattr(e, 'why', None) or e}") from None
    if not value:
        raise AdminTokenError(f"the admin token file {path} is empty: put a random token in the Secret (`reconciler keys init` makes one)")
    return AdminToken(value, path)


@dataclass(frozen=True, slots=True)
class ClientToken:
    """The token a CLI command sends, and where it came from (for its error messages)."""

    value: str | None = field(repr=False)
    source: str
    """`--admin-token-file F`, `$RECONCILER_ADMIN_TOKEN`, or the state directory's file."""
    searched: str
    """Where it was looked for, said when it is missing or refused."""


def find_for_client(token_file: str | None, state_dir: str | None, env: Mapping[str, str] | None = None) -> ClientToken:
    """`--admin-token-file`, else `$RECONCILER_ADMIN_TOKEN`, else `<state-dir>/admin-token`.

    A token file given explicitly that cannot be read or is empty is an AdminTokenError; the
    state directory's file is optional (the server then says 401, and the caller says where
    it looked).
    """
    env = os.environ if env is None else env
    state_file = Path(state_dir or DEFAULT_STATE_DIR) / TOKEN_FILE
    searched = f"--admin-token-file, ${TOKEN_ENV}, {state_file}"
    if token_file:
        try:
            value = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise AdminTokenError(f"cannot read the admin token file {token_file}: {getattr(e, 'strerror', None) or e}") from None
        if not value:
            raise AdminTokenError(f"the admin token file {token_file} is empty: copy <state-dir>/{TOKEN_FILE} of the server into it")
        return ClientToken(value, token_file, searched)
    if env.get(TOKEN_ENV, "").strip():
        return ClientToken(env[TOKEN_ENV].strip(), f"${TOKEN_ENV}", searched)
    try:
        value = state_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ClientToken(None, "", searched)
    return ClientToken(value or None, str(state_file), searched)
