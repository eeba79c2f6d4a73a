"""Why a dataplane token is refused: the errors of `reconciler.ca.tokens`, on their own so that
the signing keys can raise them without importing the token logic that uses the keys."""

from __future__ import annotations

__all__ = ["TokenError", "TokenInvalid", "TokenExpired", "TokenRevoked", "IdentityMismatch"]


class TokenError(Exception):
    """A token that must not be accepted; the message says why, for the proxy's operator."""


class TokenInvalid(TokenError):
    """Malformed, signed by an unknown key, or with a signature that does not verify."""


class TokenExpired(TokenError):
    pass


class TokenRevoked(TokenError):
    pass


class IdentityMismatch(Exception):
    """A valid token presented for a dataplane it does not name."""
