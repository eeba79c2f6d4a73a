"""Admission on the xDS port, driven over real gRPC with TLS against a real control plane.

Every refused stream is checked for its gRPC status and for having received nothing at all:
no Secret (the proxy's private key once mTLS is on) and no other resource.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.tokens import decode_unverified, issue_token
from reconciler.xds.resources import CLUSTER, LISTENER, SECRET, resource
from tests.security.support import MESH, AdsClient, LocalControlPlane, dataplane_yaml, revocation_secret
from tests.support import GitRepo

SECRET_NAME = "identity_cert:secret:default"


@dataclass
class Setup:
    repo: GitRepo
    cp: LocalControlPlane
    keys: SigningKeys
    state: Path

    def token(self, name: str = "", mesh: str = "default", **kwargs: object) -> str:
        return issue_token(self.keys, mesh=mesh, name=name, **kwargs)  # type: ignore[arg-type]

    def client(self, **kwargs: object) -> AdsClient:
        return AdsClient(self.cp.target, ca_pem=self.cp.ca_pem, **kwargs)  # type: ignore[arg-type]

    def files(self, **extra: str | None) -> dict[str, str | None]:
        return {
            "mesh.yaml": MESH,
            "web.yaml": dataplane_yaml("web", "web", 10001),
            "backend.yaml": dataplane_yaml("backend-1", "backend", 10011),
            "revocations.yaml": None,
            **extra,
        }

    def commit(self, **extra: str | None) -> str:
        sha = self.repo.commit(self.files(**extra))
        self.cp.wait_applied(sha)
        # A certificate for web, where mTLS would put it: only an admitted web may see it.
        secret = secret_pb2.Secret(name=SECRET_NAME)
        secret.tls_certificate.private_key.inline_string = "-----BEGIN PRIVATE KEY----- web's key"
        self.cp.add_resources("default.web", resource(SECRET, SECRET_NAME, secret))
        return sha


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("admission")
    repo = GitRepo(root / "repo")
    repo.commit({"mesh.yaml": MESH})
    cp = LocalControlPlane(repo.path, root / "state")
    try:
        s = Setup(repo, cp, SigningKeys.open(root / "state"), root / "state")
        s.commit()
        yield s
    finally:
        cp.stop()


def refused(client: AdsClient, code: grpc.StatusCode, message: str) -> None:
    error = client.wait_end()
    assert error.code() == code, error.details()
    assert message in (error.details() or "")
    assert client.responses == [], f"a refused stream received {client.types()}"
    client.close()


def test_valid_token_gets_its_config_and_its_secret_over_tls(setup: Setup) -> None:
    setup.commit()
    client = setup.client()
    client.open("default.web", token=setup.token("web"), secrets=[SECRET_NAME])
    client.wait_types(LISTENER, CLUSTER, SECRET)
    (secret,) = client.resources(SECRET)
    assert secret_pb2.Secret.FromString(secret.value).name == SECRET_NAME
    assert setup.cp.cp.store.proxy("default.web").connected
    client.close()


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_stream_without_token_is_unauthenticated_and_gets_nothing(setup: Setup, delta: bool) -> None:
    setup.commit()
    client = setup.client(delta=delta)
    client.open("default.web", secrets=[SECRET_NAME])
    refused(
        client,
        grpc.StatusCode.UNAUTHENTICATED,
        "dataplane token required for default.web: issue one with `reconciler token issue --mesh default --name web`",
    )


def test_expired_token_is_unauthenticated_and_gets_nothing(setup: Setup) -> None:
    setup.commit()
    client = setup.client()
    client.open("default.web", token=setup.token("web", valid_for=60, now=1_700_000_000), secrets=[SECRET_NAME])
    refused(client, grpc.StatusCode.UNAUTHENTICATED, "invalid dataplane token: token expired at 2023-11-14T22:14:20Z")


def test_token_for_another_dataplane_is_permission_denied_and_gets_nothing(setup: Setup) -> None:
    setup.commit()
    client = setup.client()
    client.open("default.web", token=setup.token("backend-1"), secrets=[SECRET_NAME])
    refused(
        client,
        grpc.StatusCode.PERMISSION_DENIED,
        "dataplane token does not admit default.web: the token is for dataplane default.backend-1, not default.web",
    )


def test_token_for_another_mesh_is_permission_denied(setup: Setup) -> None:
    client = setup.client()
    client.open("default.web", token=setup.token("web", mesh="demo"), secrets=[SECRET_NAME])
    refused(client, grpc.StatusCode.PERMISSION_DENIED, "the token is for mesh demo, not default")


def test_token_signed_by_another_control_plane_is_unauthenticated(setup: Setup, tmp_path: Path) -> None:
    foreign = issue_token(SigningKeys.open(tmp_path), mesh="default", name="web")
    client = setup.client()
    client.open("default.web", token=foreign, secrets=[SECRET_NAME])
    refused(client, grpc.StatusCode.UNAUTHENTICATED, "signature does not verify")


def test_garbage_token_is_unauthenticated(setup: Setup) -> None:
    client = setup.client()
    client.open("default.web", token="not-a-token", secrets=[SECRET_NAME])
    refused(client, grpc.StatusCode.UNAUTHENTICATED, "invalid dataplane token: malformed token")


def test_token_in_the_authorization_header_is_accepted_like_kuma_dp_sends_it(setup: Setup) -> None:
    setup.commit()
    client = setup.client(headers=[("authorization", setup.token("web"))])
    client.open("default.web", secrets=[SECRET_NAME])
    client.wait_types(LISTENER, CLUSTER, SECRET)
    client.close()
    other = setup.client(headers=[("authorization", setup.token("web"))])
    other.open("default.web", token=setup.token("web"))
    refused(other, grpc.StatusCode.UNAUTHENTICATED, "two different dataplane tokens")


def test_tag_bound_token_admits_dataplanes_whose_inbound_tags_it_allows(setup: Setup) -> None:
    setup.commit()
    token = setup.token(tags={"kuma.io/service": ["web"]})
    client = setup.client()
    client.open("default.web", token=token, secrets=[SECRET_NAME])
    client.wait_types(LISTENER, CLUSTER, SECRET)
    client.close()
    other = setup.client()
    other.open("default.backend-1", token=token)
    refused(
        other,
        grpc.StatusCode.PERMISSION_DENIED,
        'dataplane default.backend-1 has tag "kuma.io/service" with value "backend", which the token does not allow',
    )


def test_tag_bound_token_is_checked_against_a_dataplane_registered_from_metadata(setup: Setup) -> None:
    setup.commit()
    token = setup.token(tags={"kuma.io/service": ["backend"]})
    client = setup.client()
    client.open("default.backend-2", token=token, dataplane=dataplane_yaml("backend-2", "backend", 10021))
    client.wait_types(LISTENER, CLUSTER)
    client.close()
    impostor = setup.client()
    impostor.open("default.web-2", token=token, dataplane=dataplane_yaml("web-2", "web", 10031))
    refused(impostor, grpc.StatusCode.PERMISSION_DENIED, 'dataplane default.web-2 has tag "kuma.io/service" with value "web"')
    assert "default.web-2" not in setup.cp.cp.store.registered


def test_revoked_token_closes_its_open_stream_and_is_refused_from_then_on(setup: Setup) -> None:
    setup.commit()
    token = setup.token("web")
    kept = setup.token("web")
    client = setup.client()
    client.open("default.web", token=token, secrets=[SECRET_NAME])
    client.wait_types(LISTENER, CLUSTER, SECRET)
    survivor = setup.client()
    survivor.open("default.web", token=kept)
    survivor.wait_types(LISTENER, CLUSTER)
    token_id = decode_unverified(token)[1].token_id
    try:
        setup.commit(**{"revocations.yaml": revocation_secret(["some-other-id", token_id])})
        error = client.wait_end()
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == f"dataplane token {token_id} was revoked (Secret dataplane-token-revocations-default)"
        client.close()
        again = setup.client()
        again.open("default.web", token=token, secrets=[SECRET_NAME])
        refused(again, grpc.StatusCode.UNAUTHENTICATED, f"invalid dataplane token: token {token_id} is revoked")
        assert not survivor.ended.is_set(), "a stream with a token that was not revoked was closed"
    finally:
        survivor.close()
        setup.commit()


def test_plaintext_client_cannot_talk_to_the_tls_port(setup: Setup) -> None:
    client = AdsClient(setup.cp.target)
    client.open("default.web", token=setup.token("web"))
    error = client.wait_end()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert client.responses == []
    client.close()


def test_client_with_another_ca_does_not_trust_the_server(setup: Setup, tmp_path: Path) -> None:
    from reconciler.ca.xds_tls import default_names, load_or_create

    other_ca = load_or_create(tmp_path, default_names("127.0.0.1")).ca_cert_pem
    client = AdsClient(setup.cp.target, ca_pem=other_ca)
    client.open("default.web", token=setup.token("web"))
    error = client.wait_end()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert client.responses == []
    client.close()


def test_restart_keeps_the_ca_and_the_signing_key(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit({"mesh.yaml": MESH, "web.yaml": dataplane_yaml("web", "web")})
    first = LocalControlPlane(repo.path, tmp_path / "state")
    ca, key = first.ca_pem, (tmp_path / "state" / "dataplane-tokens" / "1.pem").read_bytes()
    token = issue_token(SigningKeys.open(tmp_path / "state"), mesh="default", name="web")
    first.stop()
    second = LocalControlPlane(repo.path, tmp_path / "state")
    try:
        second.wait_applied(sha)
        assert second.ca_pem == ca
        assert (tmp_path / "state" / "dataplane-tokens" / "1.pem").read_bytes() == key
        client = AdsClient(second.target, ca_pem=ca)
        client.open("default.web", token=token)
        client.wait_types(LISTENER, CLUSTER)
        client.close()
    finally:
        second.stop()


def test_auth_and_tls_off_serve_any_plaintext_proxy(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit({"mesh.yaml": MESH, "web.yaml": dataplane_yaml("web", "web")})
    cp = LocalControlPlane(repo.path, tmp_path / "state", dataplane_auth="none", xds_tls="none")
    try:
        cp.wait_applied(sha)
        client = AdsClient(cp.target)
        client.open("default.web")
        client.wait_types(LISTENER, CLUSTER)
        client.close()
        assert not (tmp_path / "state" / "xds-tls").exists()
    finally:
        cp.stop()
