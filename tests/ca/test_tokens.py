"""Dataplane tokens as values: Kuma's JWT format, what verification refuses, identity rules,
revocation lists and the signing keys kept in the state directory."""

from __future__ import annotations

import base64
import json
import multiprocessing
import stat
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.tokens import (
    IdentityMismatch,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    check_identity,
    dataplane_tags,
    decode_unverified,
    issue_token,
    parse_duration,
    parse_revocations,
    parse_tags,
    verify_token,
)


def _part(token: str, i: int) -> dict[str, object]:
    text = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))  # type: ignore[no-any-return]


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKeys:
    return SigningKeys.open(tmp_path_factory.mktemp("state"))


def test_token_is_an_rs256_jwt_with_kid_and_kumas_dataplane_claims(keys: SigningKeys) -> None:
    token = issue_token(
        keys, mesh="default", name="web-1", tags={"kuma.io/service": ["web"]}, valid_for=3600, now=1_700_000_000, token_id="id-1"
    )
    assert _part(token, 0) == {"alg": "RS256", "kid": "1", "typ": "JWT"}
    assert _part(token, 1) == {
        "Name": "web-1",
        "Mesh": "default",
        "Tags": {"kuma.io/service": ["web"]},
        "Type": "",
        "Workload": "",
        "exp": 1_700_003_600,
        "nbf": 1_699_999_995,
        "iat": 1_699_999_995,
        "jti": "id-1",
    }
    claims = verify_token(token, keys, now=1_700_000_000)
    assert (claims.mesh, claims.name, dict(claims.tags), claims.token_id, claims.key_id) == (
        "default",
        "web-1",
        {"kuma.io/service": ("web",)},
        "id-1",
        "1",
    )


def test_each_token_gets_its_own_id(keys: SigningKeys) -> None:
    ids = {verify_token(issue_token(keys, mesh="default", name="web"), keys).token_id for _ in range(3)}
    assert len(ids) == 3


def test_altered_claims_do_not_verify(keys: SigningKeys) -> None:
    token = issue_token(keys, mesh="default", name="web")
    header, _, signature = token.split(".")
    forged = ".".join([header, _b64(_part(token, 1) | {"Name": "backend"}), signature])
    with pytest.raises(TokenInvalid, match="signature does not verify"):
        verify_token(forged, keys)


def test_unsigned_and_hmac_tokens_are_refused(keys: SigningKeys) -> None:
    claims = _part(issue_token(keys, mesh="default", name="web"), 1)
    for alg in ("none", "HS256"):
        forged = f"{_b64({'alg': alg, 'kid': '1', 'typ': 'JWT'})}.{_b64(claims)}."
        with pytest.raises(TokenInvalid, match=f"unsupported token algorithm '{alg}'"):
            verify_token(forged, keys)


def test_token_of_another_control_plane_is_refused(keys: SigningKeys, tmp_path: Path) -> None:
    other = SigningKeys.open(tmp_path)  # also kid 1, another key
    with pytest.raises(TokenInvalid, match="signature does not verify"):
        verify_token(issue_token(other, mesh="default", name="web"), keys)


def test_unknown_key_id_is_refused_with_a_hint(keys: SigningKeys) -> None:
    token = issue_token(keys, mesh="default", name="web")
    header, claims, _ = token.split(".")
    signing_input = f"{_b64({'alg': 'RS256', 'kid': '9', 'typ': 'JWT'})}.{claims}"
    signature = keys._keys["1"].sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    forged = signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    with pytest.raises(TokenInvalid, match="no signing key with KID 9; if the signing key was rotated"):
        verify_token(forged, keys)


@pytest.mark.parametrize("text", ["", "abc", "a.b", "a.b.c.d", "!!.??.##", f"{_b64([1])}.{_b64({})}.", "x" * 20000])
def test_malformed_tokens_are_invalid_not_errors(keys: SigningKeys, text: str) -> None:
    with pytest.raises(TokenInvalid):
        verify_token(text, keys)


def _raw(claims: str) -> str:
    """A token whose claims are this JSON text (a bad signature: parsing comes first)."""
    raw = base64.urlsafe_b64encode(claims.encode()).rstrip(b"=").decode()
    return f"{_b64({'alg': 'RS256', 'kid': '1'})}.{raw}.AAAA"


@pytest.mark.parametrize(
    ("exp", "message"),
    [
        ("NaN", "claim exp must be a time in seconds since 1970"),
        ("Infinity", "claim exp must be a time in seconds since 1970"),
        ("-Infinity", "claim exp must be a time in seconds since 1970"),
        ("1e400", "claim exp must be a time in seconds since 1970"),
        ("1" + "0" * 400, "claim exp must be a time in seconds since 1970"),
        ("1" + "0" * 5000, "header or claims are not JSON"),
        ("[" * 5000 + "]" * 5000, "header or claims are not JSON"),
    ],
    ids=["nan", "infinity", "minus_infinity", "float_overflow", "400_digits", "5000_digits", "deep_nesting"],
)
def test_claims_python_cannot_turn_into_a_time_are_malformed(exp: str, message: str) -> None:
    with pytest.raises(TokenInvalid, match=f"^malformed token: {message}"):
        decode_unverified(_raw(f'{{"Mesh": "default", "jti": "x", "exp": {exp}}}'))


def test_claimed_times_up_to_year_9999_are_read_and_printable() -> None:
    _, claims, _, _ = decode_unverified(_raw('{"Mesh": "default", "jti": "x", "exp": 253402300799, "nbf": 1700000000.5}'))
    assert (claims.expires_at, claims.not_before) == (253402300799, 1700000000)
    assert claims.to_json()["expiresAt"] == "9999-12-31T23:59:59Z"


def test_workload_bound_token_carries_kumas_workload_claim(keys: SigningKeys) -> None:
    token = issue_token(keys, mesh="default", tags={"kuma.io/service": ["web"]}, workload="orders")
    assert _part(token, 1)["Workload"] == "orders"
    claims = verify_token(token, keys)
    assert claims.workload == "orders"
    assert claims.describe() == "mesh default (kuma.io/service=web; workload orders)"
    assert claims.to_json()["workload"] == "orders"


def test_a_token_cannot_be_issued_past_year_9999(keys: SigningKeys) -> None:
    with pytest.raises(ValueError, match="validity too long: a token must expire by 9999-12-31T23:59:59Z"):
        issue_token(keys, mesh="default", name="web", valid_for=float("inf"))


def test_expired_token_is_refused_with_its_expiry(keys: SigningKeys) -> None:
    token = issue_token(keys, mesh="default", name="web", valid_for=60, now=1_700_000_000)
    verify_token(token, keys, now=1_700_000_059)
    with pytest.raises(TokenExpired, match="token expired at 2023-11-14T22:14:20Z"):
        verify_token(token, keys, now=1_700_000_060)


def test_token_from_the_future_is_refused(keys: SigningKeys) -> None:
    token = issue_token(keys, mesh="default", name="web", now=time.time() + 3600)
    with pytest.raises(TokenInvalid, match="not valid before"):
        verify_token(token, keys)


def test_revoked_token_is_refused_by_its_id_in_its_mesh(keys: SigningKeys) -> None:
    token = issue_token(keys, mesh="demo", name="web", token_id="abc")
    verify_token(token, keys, revoked=lambda mesh: {"other"} if mesh == "demo" else {"abc"})
    with pytest.raises(TokenRevoked, match="token abc is revoked \\(Secret dataplane-token-revocations-demo in mesh demo\\)"):
        verify_token(token, keys, revoked=lambda mesh: {"abc"} if mesh == "demo" else set())


def test_revocation_list_reads_kumas_comma_format_and_newlines() -> None:
    assert parse_revocations(b"id1,id2\n") == {"id1", "id2"}
    assert parse_revocations(b"id1\nid2\r\n id3 ,\n") == {"id1", "id2", "id3"}
    assert parse_revocations(b"") == frozenset()


def test_name_bound_token_admits_only_that_dataplane_of_that_mesh(keys: SigningKeys) -> None:
    claims = verify_token(issue_token(keys, mesh="default", name="web"), keys)
    check_identity(claims, "default", "web", None)
    with pytest.raises(IdentityMismatch, match="the token is for dataplane default.web, not default.backend"):
        check_identity(claims, "default", "backend", None)
    with pytest.raises(IdentityMismatch, match="the token is for mesh default, not demo"):
        check_identity(claims, "demo", "web", None)


def test_tag_bound_token_follows_kumas_rules(keys: SigningKeys) -> None:
    claims = verify_token(issue_token(keys, mesh="default", tags={"kuma.io/service": ["web", "web-api"]}), keys)
    check_identity(claims, "default", "web-1", {"kuma.io/service": {"web"}, "version": {"v1"}})
    check_identity(claims, "default", "web-2", {"kuma.io/service": {"web", "web-api"}})
    with pytest.raises(IdentityMismatch, match='has tag "kuma.io/service" with value "backend", which the token does not allow'):
        check_identity(claims, "default", "web-3", {"kuma.io/service": {"web", "backend"}})
    with pytest.raises(IdentityMismatch, match='has no tag "kuma.io/service"'):
        check_identity(claims, "default", "web-4", {"version": {"v1"}})
    with pytest.raises(IdentityMismatch, match="is not known"):
        check_identity(claims, "default", "web-5", None)


def test_dataplane_tags_are_all_inbound_and_gateway_tags() -> None:
    spec = {"networking": {"inbound": [{"tags": {"kuma.io/service": "web"}}, {"tags": {"kuma.io/service": "web-api", "version": "v1"}}]}}
    assert dataplane_tags(spec) == {"kuma.io/service": {"web", "web-api"}, "version": {"v1"}}
    assert dataplane_tags({"networking": {"gateway": {"tags": {"kuma.io/service": "edge"}}}}) == {"kuma.io/service": {"edge"}}


def test_signing_key_is_private_and_reused_across_restarts(tmp_path: Path) -> None:
    first = SigningKeys.open(tmp_path)
    key_file = tmp_path / "dataplane-tokens" / "1.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert (tmp_path / ".gitignore").read_text().splitlines()[-1] == "*"
    token = issue_token(first, mesh="default", name="web")
    again = SigningKeys.open(tmp_path)
    assert again.key_ids() == ["1"]
    assert verify_token(token, again).name == "web"


def test_rotated_key_signs_new_tokens_and_old_tokens_still_verify(tmp_path: Path) -> None:
    keys = SigningKeys.open(tmp_path)
    old = issue_token(keys, mesh="default", name="web")
    assert keys.add_key() == "2"
    new = issue_token(keys, mesh="default", name="web")
    verifier = SigningKeys.open(tmp_path)
    assert decode_unverified(new)[1].key_id == "2"
    assert verify_token(old, verifier).key_id == "1"
    (tmp_path / "dataplane-tokens" / "1.pem").unlink()
    (tmp_path / "dataplane-tokens" / "1.pub").unlink()  # removed on purpose: both files
    with pytest.raises(TokenInvalid, match="no signing key with KID 1"):
        verify_token(old, SigningKeys.open(tmp_path))


def test_verifier_picks_up_a_key_another_process_added(tmp_path: Path) -> None:
    verifier = SigningKeys.open(tmp_path)
    issuer = SigningKeys.open(tmp_path)
    issuer.add_key()
    assert verify_token(issue_token(issuer, mesh="default", name="web"), verifier).key_id == "2"


def _open_keys(path: str) -> str:
    return SigningKeys.open(path).latest


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        kids = pool.map(_open_keys, [str(tmp_path)] * 4)
    assert kids == ["1"] * 4
    assert sorted(p.name for p in (tmp_path / "dataplane-tokens").iterdir()) == ["1.pem", "1.pub"]


def test_durations_and_tags_from_the_command_line() -> None:
    assert parse_duration("24h") == 86400
    assert parse_duration("1h30m") == 5400
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("500ms") == 0.5
    for bad in ("", "24", "1y", "h"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)
    assert parse_tags(["kuma.io/service=web,web-api,version=v1", "zone=a"]) == {
        "kuma.io/service": ["web", "web-api"],
        "version": ["v1"],
        "zone": ["a"],
    }
    with pytest.raises(ValueError, match="invalid tag"):
        parse_tags(["web"])
