"""Idle and malformed xDS streams against a real control plane over gRPC and TLS.

A stream that never sends its first request is closed after `xds_first_request_timeout`. A
token that cannot be parsed (NaN or huge times, bad base64, JSON that Python refuses) is
UNAUTHENTICATED with a short reason, never gRPC's UNKNOWN with a Python exception's text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.tokens import LATEST_TIME, issue_token
from reconciler.xds.resources import CLUSTER, LISTENER
from tests.security.support import MESH, AdsClient, LocalControlPlane, dataplane_yaml
from tests.support import GitRepo

FIRST_REQUEST_TIMEOUT = 0.5
OUT_OF_RANGE = (
    f"invalid dataplane token: malformed token: claim {{}} must be a time in seconds since 1970, at most {LATEST_TIME} (year 9999)"
)
NOT_JSON = "invalid dataplane token: malformed token: header or claims are not JSON"
NOT_BASE64 = "invalid dataplane token: malformed token: not base64url"


@dataclass
class Setup:
    cp: LocalControlPlane
    keys: SigningKeys

    def client(self) -> AdsClient:
        return AdsClient(self.cp.target, ca_pem=self.cp.ca_pem)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("malformed")
    repo = GitRepo(root / "repo")
    sha = repo.commit({"mesh.yaml": MESH, "web.yaml": dataplane_yaml("web", "web")})
    cp = LocalControlPlane(repo.path, root / "state", xds_first_request_timeout=FIRST_REQUEST_TIMEOUT)
    try:
        cp.wait_applied(sha)
        yield Setup(cp, SigningKeys.open(root / "state"))
    finally:
        cp.stop()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def crafted(keys: SigningKeys, claims: str | bytes, *, signed: bool) -> str:
    """A token with these claims (JSON text, as an attacker would write it); with `signed`,
    a real signature by the control plane's key, so the checks after the signature run too."""
    raw = claims.encode() if isinstance(claims, str) else claims
    signing_input = f"{_b64(json.dumps({'alg': 'RS256', 'kid': '1', 'typ': 'JWT'}).encode())}.{_b64(raw)}"
    signature = keys.sign(signing_input.encode(), "1") if signed else b"\0" * 256
    return f"{signing_input}.{_b64(signature)}"


CLAIMS = '{{"Mesh": "default", "Name": "web", "jti": "t-1", "nbf": 1700000000, "exp": {exp}}}'
MALFORMED = {
    "exp_is_nan": (CLAIMS.format(exp="NaN"), False, OUT_OF_RANGE.format("exp")),
    "exp_is_infinity": (CLAIMS.format(exp="Infinity"), False, OUT_OF_RANGE.format("exp")),
    "exp_overflows_a_float": (CLAIMS.format(exp="1e400"), False, OUT_OF_RANGE.format("exp")),
    "exp_has_400_digits": (CLAIMS.format(exp="1" + "0" * 400), False, OUT_OF_RANGE.format("exp")),
    "exp_is_negative": (CLAIMS.format(exp="-1"), False, OUT_OF_RANGE.format("exp")),
    "exp_has_more_digits_than_python_reads": (CLAIMS.format(exp="1" + "0" * 5000), False, NOT_JSON),
    "claims_nested_too_deep": ('{"Mesh": ' + "[" * 5000 + "]" * 5000 + "}", False, NOT_JSON),
    "signed_with_nbf_far_in_the_future": (
        '{"Mesh": "default", "Name": "web", "jti": "t-2", "nbf": 1e300, "exp": 253402300000}',
        True,
        OUT_OF_RANGE.format("nbf"),
    ),
    "signed_with_exp_past_year_9999": ('{"Mesh": "default", "Name": "web", "jti": "t-3", "exp": 1e18}', True, OUT_OF_RANGE.format("exp")),
    "claims_not_json": ("not json", False, NOT_JSON),
    "claims_not_utf8": (b'{"Mesh": "\xff"}', False, NOT_JSON),
}


@pytest.mark.parametrize(("claims", "signed", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_unparsable_token_is_unauthenticated_with_a_short_reason(setup: Setup, claims: str | bytes, signed: bool, message: str) -> None:
    token = crafted(setup.keys, claims, signed=signed)
    client = setup.client()
    client.open("default.web", token=token)
    error = client.wait_end()
    assert (error.code(), error.details()) == (grpc.StatusCode.UNAUTHENTICATED, message)
    assert client.responses == []
    client.close()


@pytest.mark.parametrize(
    "token", ["abcde.abcde.abcde", "a$b.c.d", "é.é.é"], ids=["length_not_base64", "character_not_base64url", "not_ascii"]
)
def test_token_that_is_not_base64url_is_unauthenticated(setup: Setup, token: str) -> None:
    client = setup.client()
    client.open("default.web", token=token)
    error = client.wait_end()
    assert (error.code(), error.details()) == (grpc.StatusCode.UNAUTHENTICATED, NOT_BASE64)
    client.close()


def test_stream_that_sends_no_first_request_is_closed(setup: Setup) -> None:
    client = setup.client()  # opens the stream and sends nothing
    error = client.wait_end(timeout=10)
    assert (error.code(), error.details()) == (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        f"no DiscoveryRequest within {FIRST_REQUEST_TIMEOUT:g}s of opening the stream",
    )
    client.close()


def test_admitted_stream_may_stay_quiet_after_its_first_request(setup: Setup) -> None:
    client = setup.client()
    client.open("default.web", token=issue_token(setup.keys, mesh="default", name="web"))
    client.wait_types(LISTENER, CLUSTER)
    assert not client.ended.wait(FIRST_REQUEST_TIMEOUT * 4), f"an admitted stream was closed: {client.error}"
    client.close()


NODE_IDS = {
    "longer_than_any_mesh_and_dataplane_name": (
        "default." + "a" * 300_000,
        "node id is 300,008 characters long; at most 318 (<mesh>.<dataplane name>)",
    ),
    "with_a_newline_and_an_escape_sequence": ("default.web\n\x1b[31m", 'node id "default.web\\n\\x1b[31m" holds control characters'),
    "without_a_mesh": ("web", 'node id "web" must be <mesh>.<dataplane name>'),
}


@pytest.mark.parametrize(("node_id", "message"), NODE_IDS.values(), ids=NODE_IDS.keys())
def test_node_id_that_cannot_name_a_dataplane_is_refused_without_being_echoed(setup: Setup, node_id: str, message: str) -> None:
    # Before: a 300 KB node id came back inside the refusal, past gRPC's metadata limit (the
    # proxy saw RESOURCE_EXHAUSTED, not why), and was written whole into the log.
    client = setup.client()
    client.open(node_id, token=issue_token(setup.keys, mesh="default", name="web"))
    error = client.wait_end()
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)
    assert client.responses == []
    client.close()
