"""A proxy's own Dataplane (`dataplane.resource` in its node metadata) is read within a small
budget, off the event loop: over real gRPC with TLS and tokens, against a real control plane.

A proxy with a valid token is still untrusted input: its metadata is YAML or JSON it wrote.
An alias bomb or an oversized value is refused with INVALID_ARGUMENT and a short message, and
meanwhile every other proxy and the HTTP API keep being served.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.tokens import issue_token
from reconciler.xds.resources import CLUSTER, LISTENER
from tests.security.support import MESH, AdsClient, LocalControlPlane, dataplane_yaml
from tests.support import GitRepo

BUDGET_MESSAGE = (
    "Dataplane expands to more than 20,000 values, counting each use of an alias (*ref) in full; write the values out instead of aliases"
)


def alias_bomb_dataplane(name: str) -> str:
    """A valid Dataplane (lines 1-11), then aliases on lines 12-17 that expand to 123,456 values: under a
    repository file's budget (200,000), far over one Dataplane's (20,000)."""
    levels = ["x:", "  level1: &level1 [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(2, 6):
        levels.append(f"  level{n}: &level{n} [" + ", ".join([f"*level{n - 1}"] * 10) + "]")
    return dataplane_yaml(name, name, 10101) + "\n".join(levels) + "\n"


def padded_dataplane(name: str, size: int) -> str:
    """A valid Dataplane made `size` bytes long by a comment: fine YAML, too large to accept."""
    text = dataplane_yaml(name, name, 10201)
    return text + "# " + "x" * (size - len(text) - 3) + "\n"


@dataclass
class Setup:
    repo: GitRepo
    cp: LocalControlPlane
    keys: SigningKeys

    def client(self) -> AdsClient:
        return AdsClient(self.cp.target, ca_pem=self.cp.ca_pem)

    def token(self, name: str) -> str:
        return issue_token(self.keys, mesh="default", name=name)

    def open_with(self, name: str, resource: struct_pb2.Value) -> AdsClient:
        """A stream whose first request carries `resource` as its Dataplane, in any form."""
        client = self.client()
        request = discovery_pb2.DiscoveryRequest(type_url=LISTENER)
        request.node.id = f"default.{name}"
        request.node.metadata.fields["dataplane.token"].string_value = self.token(name)
        request.node.metadata.fields["dataplane.resource"].CopyFrom(resource)
        client.requests.put(request)
        return client

    def status(self) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.cp.cp.api_port}/status", timeout=10) as r:
            assert r.status == 200
            return json.loads(r.read())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("metadata-budget")
    repo = GitRepo(root / "repo")
    sha = repo.commit({"mesh.yaml": MESH, "web.yaml": dataplane_yaml("web", "web", 10001)})
    cp = LocalControlPlane(repo.path, root / "state")
    try:
        cp.wait_applied(sha)
        yield Setup(repo, cp, SigningKeys.open(root / "state"))
    finally:
        cp.stop()


def refused(client: AdsClient) -> str:
    """The stream ended with INVALID_ARGUMENT before anything was sent; its message."""
    error = client.wait_end(timeout=30)  # a hang guard; refusing takes milliseconds
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert client.responses == [], f"a refused stream received {client.types()}"
    client.close()
    return error.details() or ""


def test_alias_bomb_in_a_proxys_dataplane_is_refused_at_its_line_with_a_short_message(setup: Setup) -> None:
    client = setup.open_with("bomb", struct_pb2.Value(string_value=alias_bomb_dataplane("bomb")))
    # level5 (line 17) is where the expansion passes 20,000 values.
    assert refused(client) == f"invalid Dataplane in node metadata:\n<node default.bomb metadata>:17: {BUDGET_MESSAGE}"
    assert "default.bomb" not in setup.cp.cp.store.registered


def test_dataplane_over_the_size_cap_is_refused_before_it_is_read(setup: Setup) -> None:
    text = padded_dataplane("big", 200_000)
    client = setup.open_with("big", struct_pb2.Value(string_value=text))
    size = struct_pb2.Value(string_value=text).ByteSize()
    assert refused(client) == f"dataplane.resource is {size:,} bytes; the limit is 131,072 (128 KiB) for one Dataplane"


def test_dataplane_sent_as_a_struct_is_held_to_the_same_size_cap(setup: Setup) -> None:
    value = struct_pb2.Value()
    value.struct_value.update({"type": "Dataplane", "mesh": "default", "name": "wide", "pad": ["x" * 16] * 10_000})
    client = setup.open_with("wide", value)
    assert refused(client) == f"dataplane.resource is {value.ByteSize():,} bytes; the limit is 131,072 (128 KiB) for one Dataplane"


def test_a_small_dataplane_in_metadata_is_still_admitted(setup: Setup) -> None:
    client = setup.open_with("small", struct_pb2.Value(string_value=dataplane_yaml("small", "small", 10301)))
    try:
        client.wait_types(LISTENER, timeout=30)
        assert "default.small" in setup.cp.cp.store.registered
    finally:
        client.close()


def test_other_proxies_and_the_api_keep_working_while_hostile_proxies_are_refused(setup: Setup) -> None:
    web = setup.client()
    web.open("default.web", token=setup.token("web"))
    try:
        web.wait_types(LISTENER, CLUSTER, timeout=30)
        hostile = [setup.open_with(f"bomb-{i}", struct_pb2.Value(string_value=alias_bomb_dataplane(f"bomb-{i}"))) for i in range(4)]
        hostile += [setup.open_with(f"big-{i}", struct_pb2.Value(string_value=padded_dataplane(f"big-{i}", 1_000_000))) for i in range(2)]
        proxies = setup.status()["proxies"]
        assert isinstance(proxies, dict) and proxies["default.web"]["connected"] is True
        messages = [refused(client) for client in hostile]
        assert all(BUDGET_MESSAGE in m for m in messages[:4]), messages
        assert all("the limit is 131,072 (128 KiB)" in m for m in messages[4:]), messages
        # The web proxy's stream is still served: a change to it reaches it.
        pushed = len(web.resources(LISTENER))
        sha = setup.repo.commit({"web.yaml": dataplane_yaml("web", "web", 10002)})
        setup.cp.wait_applied(sha)
        with web.arrived:
            web.arrived.wait_for(lambda: len(web.resources(LISTENER)) > pushed or web.ended.is_set(), timeout=30)
        assert not web.ended.is_set(), web.error
        assert any(":10002" in str(r) or "10002" in str(r) for r in web.resources(LISTENER)[pushed:])
        assert not any(node.startswith(("default.bomb", "default.big")) for node in setup.cp.cp.store.registered)
    finally:
        web.close()
