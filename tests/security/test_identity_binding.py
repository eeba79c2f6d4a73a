"""A dataplane token yields only the identity of the Dataplane that is actually served.

The control plane serves the Dataplane declared in git when there is one (node metadata
`dataplane.resource` is then ignored), else the one the proxy registers in its metadata. A
token is checked against exactly that Dataplane, at admission and again whenever what is
served changes. Every case runs over real gRPC and TLS against a control plane with a
builtin mTLS CA, and looks at the certificate in the SDS identity secret the proxy receives.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from cryptography import x509
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.tokens import issue_token
from reconciler.xds.resources import CLUSTER, LISTENER, SECRET
from tests.security.support import AdsClient, LocalControlPlane, dataplane_yaml
from tests.support import GitRepo
from tests.support import dataplane_yaml as labelled_dataplane_yaml

IDENTITY_SECRET = "identity_cert:secret:default"
MTLS_MESH = """\
type: Mesh
name: default
mtls:
  enabledBackend: ca-1
  backends:
    - name: ca-1
      type: builtin
"""


ORDERS_IDENTITY = """\
type: MeshIdentity
name: orders-identity
mesh: default
spec:
  selector:
    dataplane:
      matchLabels:
        kuma.io/workload: orders
  spiffeID:
    trustDomain: "{{ .Mesh }}.mesh.local"
  provider:
    type: Bundled
    bundled:
      autogenerate:
        enabled: true
"""
"""Dataplanes labelled kuma.io/workload=orders get spiffe://default.mesh.local/workload/orders
(the Universal default path `/workload/{{ .Workload }}`) from their own CA."""
TEAM_IDENTITY = """\
type: MeshIdentity
name: team-identity
mesh: default
spec:
  selector:
    dataplane:
      matchLabels:
        kuma.io/workload: teamed
  spiffeID:
    path: '/team/{{ label "team" }}'
  provider:
    type: Bundled
    bundled:
      autogenerate:
        enabled: true
"""
"""An id from a label other than the workload's: a Dataplane without label `team` has none."""
PAYMENTS_IDENTITY = ORDERS_IDENTITY.replace("orders-identity", "payments-identity").replace("kuma.io/workload: orders", "team: payments")
"""Selects by label `team`; its id is the default `/workload/{{ .Workload }}`."""
ORDERS = "spiffe://default.mesh.local/workload/orders"


def spiffe(service: str) -> str:
    return f"spiffe://default/{service}"


@dataclass
class World:
    repo: GitRepo
    cp: LocalControlPlane
    keys: SigningKeys
    ports: Iterator[int]

    def files(self, **extra: str | None) -> dict[str, str | None]:
        return {
            "mesh.yaml": MTLS_MESH,
            "backend.yaml": dataplane_yaml("backend", "backend", 10011),
            "frontend.yaml": dataplane_yaml("frontend", "frontend", 10001),
            "orders.yaml": labelled_dataplane_yaml("orders", "orders", 10041, 11041, labels={"kuma.io/workload": "orders"}),
            "orders-identity.yaml": ORDERS_IDENTITY,
            "team-identity.yaml": TEAM_IDENTITY,
            "payments-identity.yaml": PAYMENTS_IDENTITY,
            **extra,
        }

    def commit(self, **extra: str | None) -> str:
        sha = self.repo.commit(self.files(**extra))
        self.cp.wait_applied(sha)
        return sha

    def token(self, *, name: str = "", service: str = "", workload: str = "") -> str:
        tags = {"kuma.io/service": [service]} if service else None
        return issue_token(self.keys, mesh="default", name=name, tags=tags, workload=workload)

    def metadata(self, name: str, service: str) -> str:
        return dataplane_yaml(name, service, next(self.ports))

    def client(self, *, delta: bool = False) -> AdsClient:
        return AdsClient(self.cp.target, ca_pem=self.cp.ca_pem, delta=delta)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("identity")
    repo = GitRepo(root / "repo")
    repo.commit({"mesh.yaml": MTLS_MESH})
    cp = LocalControlPlane(repo.path, root / "state")
    try:
        w = World(repo, cp, SigningKeys.open(root / "state"), itertools.count(12001, 10))
        w.commit()
        yield w
    finally:
        cp.stop()


def identity_sans(client: AdsClient) -> list[set[str]]:
    """The SPIFFE ids of every identity certificate the stream received, in order (the
    certificates also carry Kuma's `kuma://` tag URIs, which are not identities)."""
    out = []
    for any_ in client.resources(SECRET):
        secret = secret_pb2.Secret.FromString(any_.value)
        if secret.name != IDENTITY_SECRET:
            continue
        cert = x509.load_pem_x509_certificate(secret.tls_certificate.certificate_chain.inline_bytes)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out.append({uri for uri in san.get_values_for_type(x509.UniformResourceIdentifier) if uri.startswith("spiffe://")})
    return out


def admitted_as(client: AdsClient, service: str) -> None:
    client.wait_types(LISTENER, CLUSTER, SECRET)
    assert identity_sans(client) == [{service if service.startswith("spiffe://") else spiffe(service)}]


def refused(client: AdsClient, code: grpc.StatusCode, message: str) -> None:
    error = client.wait_end()
    assert (error.code(), error.details()) == (code, message)
    assert client.responses == [], f"a refused stream received {client.types()}"


@dataclass(frozen=True)
class Case:
    token_name: str = ""
    """The dataplane a name-bound token names ("{node}": the node's own name)."""
    token_service: str = ""
    """The kuma.io/service a tag-bound token allows."""
    metadata_service: str | None = None
    """The service of the Dataplane in node metadata; None: no Dataplane in metadata."""
    served: str | None = None
    """The service whose identity the proxy gets; None when refused."""
    code: grpc.StatusCode | None = None
    message: str = ""


# The git Dataplane default.backend (service backend) exists; the runtime node does not.
GIT = "backend"
GIT_CASES = {
    "name_bound_without_metadata": Case(token_name="{node}", served="backend"),
    "name_bound_with_matching_metadata": Case(token_name="{node}", metadata_service="backend", served="backend"),
    "name_bound_with_other_tags_in_metadata_gets_the_git_identity": Case(
        token_name="{node}", metadata_service="frontend", served="backend"
    ),
    "name_bound_to_another_dataplane": Case(
        token_name="frontend",
        metadata_service="frontend",
        code=grpc.StatusCode.PERMISSION_DENIED,
        message="dataplane token does not admit default.backend: the token is for dataplane default.frontend, not default.backend",
    ),
    "tag_bound_without_metadata": Case(token_service="backend", served="backend"),
    "tag_bound_with_matching_metadata": Case(token_service="backend", metadata_service="backend", served="backend"),
    "tag_bound_with_other_tags_in_metadata_gets_the_git_identity": Case(
        token_service="backend", metadata_service="frontend", served="backend"
    ),
    "tag_bound_to_another_service_without_metadata": Case(
        token_service="frontend",
        code=grpc.StatusCode.PERMISSION_DENIED,
        message='dataplane token does not admit default.backend: dataplane default.backend has tag "kuma.io/service" with value "backend", '
        "which the token does not allow (allowed: frontend)",
    ),
    # The attack of issue 11, item 1: metadata carries the tags the token allows, git's do not.
    "tag_bound_to_another_service_with_its_tags_in_metadata": Case(
        token_service="frontend",
        metadata_service="frontend",
        code=grpc.StatusCode.PERMISSION_DENIED,
        message='dataplane token does not admit default.backend: dataplane default.backend has tag "kuma.io/service" with value "backend", '
        "which the token does not allow (allowed: frontend); the Dataplane declared in git is served, not the one in node metadata",
    ),
}
RUNTIME_CASES = {
    "name_bound_with_metadata": Case(token_name="{node}", metadata_service="backend", served="backend"),
    # Kuma's rule: a token bound to a name only lets that dataplane declare its own tags.
    "name_bound_lets_the_dataplane_declare_its_tags": Case(token_name="{node}", metadata_service="frontend", served="frontend"),
    "name_bound_to_another_dataplane": Case(
        token_name="someone-else",
        metadata_service="backend",
        code=grpc.StatusCode.PERMISSION_DENIED,
        message="dataplane token does not admit default.{node}: the token is for dataplane default.someone-else, not default.{node}",
    ),
    "tag_bound_with_matching_metadata": Case(token_service="backend", metadata_service="backend", served="backend"),
    "tag_bound_with_other_tags_in_metadata": Case(
        token_service="backend",
        metadata_service="frontend",
        code=grpc.StatusCode.PERMISSION_DENIED,
        message='dataplane token does not admit default.{node}: dataplane default.{node} has tag "kuma.io/service" with value "frontend", '
        "which the token does not allow (allowed: backend)",
    ),
    "tag_bound_without_metadata": Case(
        token_service="backend",
        code=grpc.StatusCode.PERMISSION_DENIED,
        message="dataplane token does not admit default.{node}: dataplane default.{node} is not known, so the tags the token is bound to cannot be checked",
    ),
}
_runtime_names = itertools.count(1)


def run_case(world: World, node: str, case: Case, *, delta: bool = False) -> None:
    token = world.token(name=case.token_name.format(node=node), service=case.token_service)
    metadata = world.metadata(node, case.metadata_service) if case.metadata_service else None
    client = world.client(delta=delta)
    try:
        client.open(f"default.{node}", token=token, dataplane=metadata, secrets=[IDENTITY_SECRET])
        if case.served is not None:
            admitted_as(client, case.served)
        else:
            assert case.code is not None
            refused(client, case.code, case.message.format(node=node))
    finally:
        client.close()


@pytest.mark.parametrize("case", GIT_CASES.values(), ids=GIT_CASES.keys())
def test_token_against_a_dataplane_declared_in_git(world: World, case: Case) -> None:
    run_case(world, GIT, case)


@pytest.mark.parametrize("case", RUNTIME_CASES.values(), ids=RUNTIME_CASES.keys())
def test_token_against_a_dataplane_registered_from_metadata(world: World, case: Case) -> None:
    run_case(world, f"runtime-{next(_runtime_names)}", case)


def test_the_attack_is_refused_on_delta_streams_too(world: World) -> None:
    run_case(world, GIT, GIT_CASES["tag_bound_to_another_service_with_its_tags_in_metadata"], delta=True)


def test_metadata_naming_another_dataplane_is_invalid(world: World) -> None:
    client = world.client()
    client.open(
        "default.backend",
        token=world.token(service="frontend"),
        dataplane=world.metadata("frontend", "frontend"),
        secrets=[IDENTITY_SECRET],
    )
    refused(
        client, grpc.StatusCode.INVALID_ARGUMENT, "node id default.backend does not match the Dataplane default.frontend in its metadata"
    )
    client.close()


def test_a_git_dataplane_that_appears_later_closes_a_stream_its_token_does_not_admit(world: World) -> None:
    world.commit()
    client = world.client()
    client.open(
        "default.late", token=world.token(service="frontend"), dataplane=world.metadata("late", "frontend"), secrets=[IDENTITY_SECRET]
    )
    admitted_as(client, "frontend")
    try:
        world.commit(**{"late.yaml": dataplane_yaml("late", "backend", 10021)})
        error = client.wait_end()
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error.details() == (
            'dataplane token does not admit default.late: dataplane default.late has tag "kuma.io/service" with value "backend", '
            "which the token does not allow (allowed: frontend); the Dataplane declared in git is served, not the one in node metadata"
        )
        assert all(sans == {spiffe("frontend")} for sans in identity_sans(client)), identity_sans(client)
    finally:
        client.close()
        world.commit(**{"late.yaml": None})


def test_a_git_dataplane_that_goes_away_closes_a_stream_whose_metadata_the_token_does_not_admit(world: World) -> None:
    world.commit(**{"moving.yaml": dataplane_yaml("moving", "backend", 10031)})
    client = world.client()
    client.open(
        "default.moving", token=world.token(service="backend"), dataplane=world.metadata("moving", "frontend"), secrets=[IDENTITY_SECRET]
    )
    admitted_as(client, "backend")
    try:
        world.commit(**{"moving.yaml": None})
        error = client.wait_end()
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error.details() == (
            'dataplane token does not admit default.moving: dataplane default.moving has tag "kuma.io/service" with value "frontend", '
            "which the token does not allow (allowed: backend)"
        )
        assert all(sans == {spiffe("backend")} for sans in identity_sans(client)), identity_sans(client)
    finally:
        client.close()


def test_a_second_stream_that_registers_other_tags_closes_the_first_before_it_sees_them(world: World) -> None:
    world.commit()
    first = world.client()
    first.open(
        "default.shared", token=world.token(service="backend"), dataplane=world.metadata("shared", "backend"), secrets=[IDENTITY_SECRET]
    )
    admitted_as(first, "backend")
    second = world.client()
    try:
        second.open(
            "default.shared",
            token=world.token(service="frontend"),
            dataplane=world.metadata("shared", "frontend"),
            secrets=[IDENTITY_SECRET],
        )
        admitted_as(second, "frontend")
        error = first.wait_end()
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert 'has tag "kuma.io/service" with value "frontend", which the token does not allow (allowed: backend)' in (
            error.details() or ""
        )
        assert identity_sans(first) == [{spiffe("backend")}]
    finally:
        first.close()
        second.close()


# -- identities from a MeshIdentity: the kuma.io/workload label is the identity ----------------
def test_git_dataplane_gets_the_workload_identity_git_gives_it_with_a_tag_bound_token(world: World) -> None:
    world.commit()
    client = world.client()
    client.open("default.orders", token=world.token(service="orders"), secrets=[IDENTITY_SECRET])
    admitted_as(client, ORDERS)
    client.close()


@pytest.mark.parametrize("bound", ["tags", "name"])
def test_registered_dataplane_cannot_pick_a_workload_identity_with_a_token_not_bound_to_it(world: World, bound: str) -> None:
    world.commit()
    node = f"runtime-{next(_runtime_names)}"
    token = world.token(service="web") if bound == "tags" else world.token(name=node)
    # The tags are ones the token allows; the label picks the orders workload's identity.
    metadata = labelled_dataplane_yaml(node, "web", next(world.ports), 11001, labels={"kuma.io/workload": "orders"})
    client = world.client()
    client.open(f"default.{node}", token=token, dataplane=metadata, secrets=[IDENTITY_SECRET])
    refused(
        client,
        grpc.StatusCode.PERMISSION_DENIED,
        f'dataplane token does not admit default.{node}: its identity comes from label "kuma.io/workload" (orders) through MeshIdentity '
        "orders-identity, so the token must be bound to that workload (issue it with a workload)",
    )
    client.close()


def test_workload_bound_token_admits_a_registered_dataplane_of_that_workload_only(world: World) -> None:
    world.commit()
    node = f"runtime-{next(_runtime_names)}"
    token = world.token(service="web", workload="orders")
    client = world.client()
    client.open(
        f"default.{node}",
        token=token,
        secrets=[IDENTITY_SECRET],
        dataplane=labelled_dataplane_yaml(node, "web", next(world.ports), 11001, labels={"kuma.io/workload": "orders"}),
    )
    admitted_as(client, ORDERS)
    client.close()
    other = world.client()
    other.open(
        f"default.{node}-b",
        token=token,
        secrets=[IDENTITY_SECRET],
        dataplane=labelled_dataplane_yaml(f"{node}-b", "web", next(world.ports), 11001, labels={"kuma.io/workload": "billing"}),
    )
    refused(
        other,
        grpc.StatusCode.PERMISSION_DENIED,
        f'dataplane token does not admit default.{node}-b: dataplane default.{node}-b has label "kuma.io/workload" with value "billing", '
        'the token is for workload "orders"',
    )
    other.close()


def test_registered_dataplane_without_the_workload_label_its_identity_needs_is_refused(world: World) -> None:
    world.commit()
    node = f"runtime-{next(_runtime_names)}"
    # Selected by label team; the default path would render an empty workload, one id for all such proxies.
    metadata = labelled_dataplane_yaml(node, "web", next(world.ports), 11001, labels={"team": "payments"})
    client = world.client()
    client.open(f"default.{node}", token=world.token(service="web"), dataplane=metadata, secrets=[IDENTITY_SECRET])
    refused(
        client,
        grpc.StatusCode.PERMISSION_DENIED,
        f'dataplane token does not admit default.{node}: dataplane default.{node} has no label "kuma.io/workload", '
        "which MeshIdentity payments-identity makes its identity",
    )
    client.close()


def test_registered_dataplane_its_mesh_identity_cannot_name_is_refused_and_commits_still_apply(world: World) -> None:
    world.commit()
    node = f"runtime-{next(_runtime_names)}"
    metadata = labelled_dataplane_yaml(node, "web", next(world.ports), 11001, labels={"kuma.io/workload": "teamed"})
    client = world.client()
    client.open(f"default.{node}", token=world.token(name=node), dataplane=metadata, secrets=[IDENTITY_SECRET])
    try:
        refused(
            client,
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid Dataplane in node metadata: MeshIdentity default/team-identity: cannot render '/team/{{ label \"team\" }}': "
            'template: :1:9: executing "" at <label>: error calling label: label team not found',
        )
        assert f"default.{node}" not in world.cp.cp.store.registered
        world.commit(**{"extra.yaml": dataplane_yaml("extra", "extra", 10051)})  # a build with every registered Dataplane still works
    finally:
        client.close()
        world.commit(**{"extra.yaml": None})
