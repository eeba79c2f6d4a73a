"""Dataplane tokens: signed JWTs that prove which dataplane a proxy is, in Kuma's format.

A token is `base64url(header).base64url(claims).base64url(signature)`, signed RS256 with an
RSA-2048 key of the control plane; the header names the key (`kid`) so verification needs
only that key. Claims, as Kuma's dataplane tokens spell them:

    {"Name": "web-1", "Mesh": "default", "Tags": {"kuma.io/service": ["web"]},
     "Type": "", "Workload": "", "exp": 1700086400, "nbf": 1700000000,
     "iat": 1700000000, "jti": "0d6f…"}

`Name` and `Tags` are optional bounds: a token with a name admits that dataplane only; a
token with tags admits any dataplane of the mesh whose inbound tags all carry allowed values
(so one token serves every replica of a service). `jti` is the token ID that revocation
names. The signing keys are `reconciler.ca.signing_keys.SigningKeys`; the newest key signs.

Revocation is Kuma's: a Secret `dataplane-token-revocations-<mesh>` in that mesh whose
`data` decodes to token IDs separated by commas (Kuma's format, a final newline allowed);
newlines and spaces between IDs are accepted too.

`Workload` (Kuma 2.12+) binds a token to the dataplane's `kuma.io/workload` label, which a
MeshIdentity can make its SPIFFE id (`check_workload`).

Everything here is a pure function of its arguments (the keys are passed in).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from reconciler.ca.token_errors import IdentityMismatch, TokenError, TokenExpired, TokenInvalid, TokenRevoked
from reconciler.frozen import FrozenDict

if TYPE_CHECKING:
    from reconciler.ca.signing_keys import SigningKeys

__all__ = [
    "ALGORITHM",
    "LATEST_TIME",
    "REVOCATIONS_PREFIX",
    "WORKLOAD_LABEL",
    "DataplaneClaims",
    "TokenError",
    "TokenInvalid",
    "TokenExpired",
    "TokenRevoked",
    "IdentityMismatch",
    "issue_token",
    "verify_token",
    "decode_unverified",
    "check_identity",
    "check_workload",
    "dataplane_tags",
    "parse_revocations",
    "revocation_secret_name",
    "parse_duration",
    "parse_tags",
]

ALGORITHM = "RS256"
REVOCATIONS_PREFIX = "dataplane-token-revocations-"
WORKLOAD_LABEL = "kuma.io/workload"
CLOCK_SKEW = 5
"""Seconds `iat`/`nbf` are set back (Kuma does the same) so a replica whose clock is a little
behind accepts a fresh token."""
MAX_TOKEN_BYTES = 16 * 1024
LATEST_TIME = 253_402_300_799
"""9999-12-31T23:59:59Z: the latest `exp`/`nbf`/`iat` a token may carry. A bound keeps every
claimed time printable and comparable; NaN, infinity or a 400-digit number is malformed."""


@dataclass(frozen=True, slots=True)
class DataplaneClaims:
    mesh: str
    name: str = ""
    """Empty: any dataplane of the mesh that matches `tags`."""
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=FrozenDict)
    workload: str = ""
    """Empty: not bound to a workload (see `check_workload`)."""
    token_id: str = ""
    issued_at: int = 0
    not_before: int = 0
    expires_at: int = 0
    key_id: str = ""

    def describe(self) -> str:
        bound = [f"name {self.name}"] if self.name else []
        bound += [f"{k}={','.join(v)}" for k, v in sorted(self.tags.items())]
        bound += [f"workload {self.workload}"] if self.workload else []
        return f"mesh {self.mesh}" + (f" ({'; '.join(bound)})" if bound else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.token_id,
            "mesh": self.mesh,
            "name": self.name or None,
            "tags": {k: list(v) for k, v in sorted(self.tags.items())},
            "workload": self.workload or None,
            "issuedAt": _iso(self.issued_at),
            "expiresAt": _iso(self.expires_at),
            "kid": self.key_id,
        }


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise TokenInvalid("malformed token: not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenInvalid("malformed token: not base64url") from None


# -- issue and verify -------------------------------------------------------------------------
def issue_token(
    keys: SigningKeys,
    *,
    mesh: str,
    name: str = "",
    tags: Mapping[str, Iterable[str]] | None = None,
    valid_for: float = 24 * 3600,
    now: float | None = None,
    token_id: str | None = None,
    workload: str = "",
) -> str:
    """A token for dataplane `name` (or any dataplane with `tags`) of `mesh`, signed by the
    newest key; with `workload`, only for dataplanes labelled `kuma.io/workload: <workload>`."""
    if not mesh:
        raise ValueError("a dataplane token needs a mesh")
    if valid_for <= 0:
        raise ValueError("validity must be positive")
    issued = int(now if now is not None else time.time()) - CLOCK_SKEW
    if issued + valid_for + CLOCK_SKEW > LATEST_TIME:
        raise ValueError(f"validity too long: a token must expire by {_iso(LATEST_TIME)}")
    kid = keys.latest
    header = {"alg": ALGORITHM, "kid": kid, "typ": "JWT"}
    claims = {
        "Name": name,
        "Mesh": mesh,
        "Tags": {k: sorted(set(v)) for k, v in sorted((tags or {}).items())},
        "Type": "",
        "Workload": workload,
        "exp": issued + int(valid_for) + CLOCK_SKEW,
        "nbf": issued,
        "iat": issued,
        "jti": token_id or str(uuid.uuid4()),
    }
    signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}"
    return f"{signing_input}.{_b64(keys.sign(signing_input.encode('ascii'), kid))}"


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def decode_unverified(token: str) -> tuple[dict[str, Any], DataplaneClaims, bytes, bytes]:
    """(header, claims, signing input, signature) of a well-formed token, without checking it."""
    token = token.strip()
    if not token:
        raise TokenInvalid("empty token")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenInvalid(f"token longer than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalid("malformed token: a JWT has three dot-separated parts")
    try:
        header = json.loads(_unb64(parts[0]))
        payload = json.loads(_unb64(parts[1]))
    except (ValueError, RecursionError):  # also a number past Python's digit limit, or deep nesting
        raise TokenInvalid("malformed token: header or claims are not JSON") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise TokenInvalid("malformed token: header and claims must be JSON objects")
    return header, _claims(header, payload), f"{parts[0]}.{parts[1]}".encode("ascii"), _unb64(parts[2])


def _claims(header: Mapping[str, Any], payload: Mapping[str, Any]) -> DataplaneClaims:
    def text(key: str) -> str:
        value = payload.get(key) or ""
        if not isinstance(value, str):
            raise TokenInvalid(f"malformed token: claim {key} must be a string")
        return value

    def number(key: str) -> int:
        value = payload.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TokenInvalid(f"malformed token: claim {key} must be a number")
        # Written so that NaN fails too (every comparison with NaN is false).
        if not 0 <= value <= LATEST_TIME:
            raise TokenInvalid(f"malformed token: claim {key} must be a time in seconds since 1970, at most {LATEST_TIME} (year 9999)")
        return int(value)

    raw_tags = payload.get("Tags") or {}
    if not isinstance(raw_tags, dict) or not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in raw_tags.values()):
        raise TokenInvalid("malformed token: claim Tags must map tag names to lists of values")
    kid = header.get("kid")
    return DataplaneClaims(
        mesh=text("Mesh"),
        name=text("Name"),
        tags=FrozenDict({str(k): tuple(v) for k, v in raw_tags.items()}),
        workload=text("Workload"),
        token_id=text("jti"),
        issued_at=number("iat") if "iat" in payload else 0,
        not_before=number("nbf") if "nbf" in payload else 0,
        expires_at=number("exp"),
        key_id=kid if isinstance(kid, str) else "",
    )


def verify_token(
    token: str,
    keys: SigningKeys,
    *,
    revoked: Callable[[str], Collection[str]] = lambda mesh: (),
    now: float | None = None,
) -> DataplaneClaims:
    """The claims of a token whose signature, validity period and revocation status check out.

    `revoked(mesh)` gives the revoked token IDs of a mesh. Raises `TokenInvalid`,
    `TokenExpired` or `TokenRevoked`.
    """
    header, claims, signing_input, signature = decode_unverified(token)
    if header.get("alg") != ALGORITHM:
        raise TokenInvalid(f"unsupported token algorithm {header.get('alg')!r}: only {ALGORITHM} is accepted")
    if not claims.key_id:
        raise TokenInvalid("malformed token: the header has no kid")
    public = keys.public_key(claims.key_id)
    if public is None:
        raise TokenInvalid(f"no signing key with KID {claims.key_id}; if the signing key was rotated or removed, issue a new token")
    try:
        public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise TokenInvalid("signature does not verify: the token was not issued by this control plane, or was altered") from None
    if not claims.mesh:
        raise TokenInvalid("the token names no mesh")
    if not claims.token_id:
        raise TokenInvalid("the token has no ID (jti)")
    t = now if now is not None else time.time()
    if t >= claims.expires_at:
        raise TokenExpired(f"token expired at {_iso(claims.expires_at)}")
    if claims.not_before and t < claims.not_before:
        raise TokenInvalid(f"token is not valid before {_iso(claims.not_before)}: check the clock of the host that issued it")
    if claims.token_id in revoked(claims.mesh):
        raise TokenRevoked(f"token {claims.token_id} is revoked (Secret {revocation_secret_name(claims.mesh)} in mesh {claims.mesh})")
    return claims


# -- identity ---------------------------------------------------------------------------------
def dataplane_tags(spec: Mapping[str, Any]) -> dict[str, set[str]]:
    """Every tag value of a Dataplane: all its inbounds' tags and its gateway's (Kuma's TagSet)."""
    net = spec.get("networking") or {}
    out: dict[str, set[str]] = {}
    sources = [i.get("tags") or {} for i in (net.get("inbound") or ()) if isinstance(i, Mapping)]
    gateway = net.get("gateway")
    if isinstance(gateway, Mapping):
        sources.append(gateway.get("tags") or {})
    for tags in sources:
        for k, v in tags.items():
            out.setdefault(str(k), set()).add(str(v))
    return out


def check_identity(
    claims: DataplaneClaims, mesh: str, name: str, tags: Mapping[str, Collection[str]] | None, *, check_tags: bool = True
) -> None:
    """Raise `IdentityMismatch` unless the token admits dataplane `mesh`.`name`.

    `tags` are the dataplane's tags (`dataplane_tags`), None when the Dataplane is not known;
    a token bound to tags needs them (Kuma's rules: the dataplane carries every tag the token
    names, and each of its values is among the token's values). `check_tags=False` checks
    mesh and name only.
    """
    if claims.mesh != mesh:
        raise IdentityMismatch(f"the token is for mesh {claims.mesh}, not {mesh}")
    if claims.name and claims.name != name:
        raise IdentityMismatch(f"the token is for dataplane {claims.mesh}.{claims.name}, not {mesh}.{name}")
    if not claims.tags:
        if not claims.name:
            raise IdentityMismatch("the token names neither a dataplane nor tags")
        return
    if not check_tags:
        return
    if tags is None:
        raise IdentityMismatch(f"dataplane {mesh}.{name} is not known, so the tags the token is bound to cannot be checked")
    for tag, allowed in sorted(claims.tags.items()):
        values = tags.get(tag)
        if not values:
            raise IdentityMismatch(f'dataplane {mesh}.{name} has no tag "{tag}" required by the token')
        for value in sorted(values):
            if value not in allowed:
                raise IdentityMismatch(
                    f'dataplane {mesh}.{name} has tag "{tag}" with value "{value}", which the token does not allow (allowed: {", ".join(allowed)})'
                )


def check_workload(claims: DataplaneClaims, mesh: str, name: str, labels: Mapping[str, str], identity_from_label: str | None) -> None:
    """Raise `IdentityMismatch` unless the token admits the dataplane's workload (Kuma's rule).

    A workload-bound token needs the dataplane's `kuma.io/workload` label to carry that
    workload. A token bound to no workload is refused when the dataplane's SPIFFE id comes
    from that label (`identity_from_label` names the MeshIdentity that makes it so): else the
    proxy would choose its own identity.
    """
    workload = labels.get(WORKLOAD_LABEL)
    if identity_from_label is not None and workload is None:  # every such dataplane would share one id
        raise IdentityMismatch(
            f'dataplane {mesh}.{name} has no label "{WORKLOAD_LABEL}", which MeshIdentity {identity_from_label} makes its identity'
        )
    if not claims.workload:
        if identity_from_label is not None and workload is not None:
            raise IdentityMismatch(
                f'its identity comes from label "{WORKLOAD_LABEL}" ({workload}) through MeshIdentity {identity_from_label}, '
                "so the token must be bound to that workload (issue it with a workload)"
            )
        return
    if workload is None:
        raise IdentityMismatch(
            f'dataplane {mesh}.{name} has no label "{WORKLOAD_LABEL}", and the token is for workload "{claims.workload}"'
        )
    if workload != claims.workload:
        raise IdentityMismatch(
            f'dataplane {mesh}.{name} has label "{WORKLOAD_LABEL}" with value "{workload}", the token is for workload "{claims.workload}"'
        )


# -- revocation -------------------------------------------------------------------------------
def revocation_secret_name(mesh: str) -> str:
    return REVOCATIONS_PREFIX + mesh


def parse_revocations(data: bytes) -> frozenset[str]:
    """Token IDs in a revocation Secret's decoded `data`: comma (Kuma) or newline separated."""
    text = data.decode("utf-8", errors="replace")
    return frozenset(part.strip() for part in re.split(r"[,\n\r]", text) if part.strip())


# -- command-line values ----------------------------------------------------------------------
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (`24h`, `1h30m`, `90s`), plus `d` for days (`365d`).

    For command-line values (`token issue --valid-for`); not `reconciler.durations`, which
    reads Kuma's fields as Go does: no days there, and signs, fractions and `0` are allowed.
    """
    s = text.strip()
    if not s or _DURATION_PART.sub("", s):
        raise ValueError(f'invalid duration "{text}": use e.g. 24h, 30m, 1h30m, 7d')
    return sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(s))


def parse_tags(values: Iterable[str]) -> dict[str, list[str]]:
    """`kuma.io/service=web,version=v1` → tags; a bare value adds to the previous tag, so
    `kuma.io/service=web,web-api` allows two values (Kuma's `--tag` takes that form)."""
    out: dict[str, list[str]] = {}
    for value in values:
        last: str | None = None
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            key, eq, val = item.partition("=")
            if eq:
                key, val = key.strip(), val.strip()
                if not key or not val:
                    raise ValueError(f'invalid tag "{item}": use name=value')
                out.setdefault(key, []).append(val)
                last = key
            elif last is not None:
                out[last].append(item)
            else:
                raise ValueError(f'invalid tag "{item}": use name=value')
    return out
