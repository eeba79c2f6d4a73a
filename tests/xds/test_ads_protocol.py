"""The ADS server against the xDS protocol, driven directly over a real gRPC stream.

The server runs on its own event loop thread with a real ConfigCache (tests/xds/ads_support.py); the test plays the
client (as Envoy would) and changes the cache between requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from envoy.config.listener.v3 import api_listener_pb2, listener_pb2

from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, resource
from tests.xds.ads_support import NODE, Client, Server, cla, cluster, listener, names, route


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    c = Client(server.port)
    yield c
    c.close()


@pytest.fixture
def delta(server: Server) -> Iterator[Client]:
    c = Client(server.port, delta=True)
    yield c
    c.close()


# -- state of the world ------------------------------------------------------------------------
def test_initial_wildcard_request_is_answered_with_the_full_state(server: Server, client: Client) -> None:
    server.set("r1", cluster("a"), cluster("b"), cla("a"))
    client.send(CLUSTER, first=True)
    response = client.recv()
    assert response.type_url == CLUSTER
    assert names(response) == ["a", "b"]
    assert response.nonce and response.version_info


def test_request_before_any_config_waits_for_it(server: Server, client: Client) -> None:
    client.send(CLUSTER, first=True)
    assert client.nothing()
    server.set("r1", cluster("a"))
    assert names(client.recv()) == ["a"]


def test_ack_of_current_content_gets_no_push_and_unchanged_commit_sends_nothing(server: Server, client: Client) -> None:
    server.set("r1", cluster("a"))
    client.send(CLUSTER, first=True)
    first = client.recv()
    client.ack(first)
    assert client.nothing()
    server.set("r2", cluster("a"))  # a new commit that does not change this proxy
    assert client.nothing()
    assert server.recorder.of("ack") == [("ack", CLUSTER, "r1")]


def test_changed_content_is_pushed_with_a_new_version(server: Server, client: Client) -> None:
    server.set("r1", cluster("a"))
    client.send(CLUSTER, first=True)
    first = client.recv()
    client.ack(first)
    server.set("r2", cluster("a", timeout=9))
    second = client.recv()
    assert second.version_info != first.version_info and second.nonce != first.nonce
    client.ack(second)
    assert client.nothing()


def test_stale_nonce_request_is_ignored(server: Server, client: Client) -> None:
    server.set("r1", cluster("a"), cla("a"), cla("b"))
    client.send(CLUSTER, first=True)
    client.ack(client.recv())
    client.send(ENDPOINT, ["a"])
    eds = client.recv()
    server.set("r2", cluster("a"), cla("a", port=2), cla("b"))
    newer = client.recv()
    # A request still carrying the older nonce (sent before the client saw `newer`) is stale.
    client.send(ENDPOINT, ["a", "b"], version=eds.version_info, nonce=eds.nonce)
    assert client.nothing()
    # ACKing the latest nonce with the new subscription is answered, with what the client lacks.
    client.send(ENDPOINT, ["a", "b"], version=newer.version_info, nonce=newer.nonce)
    assert names(client.recv()) == ["b"]


def test_nack_is_recorded_and_the_rejected_content_is_never_resent(server: Server, client: Client) -> None:
    server.set("r1", listener("l", 1))
    client.send(LISTENER, first=True)
    good = client.recv()
    client.ack(good)
    server.set("r2", listener("l", 2))
    bad = client.recv()
    client.send(LISTENER, version=good.version_info, nonce=bad.nonce, error="cannot bind")
    assert client.nothing(0.6)
    assert server.recorder.of("nack") == [("nack", LISTENER, "r2", "cannot bind")]
    server.set("r3", listener("l", 2), cluster("unrelated"))  # same listeners: still the rejected set
    assert client.nothing()
    server.set("r4", listener("l", 3))
    fixed = client.recv()
    assert fixed.version_info not in (good.version_info, bad.version_info)


def test_changed_subscription_is_answered_even_when_nothing_changed(server: Server, client: Client) -> None:
    server.set("r1", cluster("a"), cluster("b"), cla("a"), cla("b"))
    client.send(ENDPOINT, ["a"], first=True)
    first = client.recv()
    assert names(first) == ["a"]
    client.ack(first, ["a"])
    assert client.nothing()
    # After a CDS change Envoy re-requests EDS for the clusters it now has: it gets the one it
    # lacks (it keeps `a`), with the version of the whole set.
    client.send(ENDPOINT, ["a", "b"], version=first.version_info, nonce=first.nonce)
    second = client.recv()
    assert names(second) == ["b"] and second.version_info != first.version_info


def test_updates_go_out_cds_eds_lds_rds_and_stale_clusters_are_removed_last(server: Server, client: Client) -> None:
    server.set("r1", cluster("old"), cla("old"), listener("l"), route("rt", "old"))
    client.send(CLUSTER, first=True)
    client.ack(client.recv())
    client.send(ENDPOINT, ["old"])
    eds = client.recv()
    client.ack(eds, ["old"])
    client.send(LISTENER)
    client.ack(client.recv())
    client.send(ROUTE, ["rt"])
    client.ack(client.recv(), ["rt"])
    assert client.nothing()

    server.set("r2", cluster("new"), cla("new"), cla("old"), listener("l", 2), route("rt", "new"))
    cds = client.recv()
    # New cluster added, old one kept while still referenced. `old` is unchanged: Envoy keeps it
    # (warm), so its endpoints are not sent again.
    assert (cds.type_url, names(cds)) == (CLUSTER, ["new", "old"])
    # The listener that routes to `new` waits until Envoy has asked for `new`'s endpoints: sent
    # right away, it would be applied before them (10-25 s at 10,000 listeners) while `new` warms.
    assert client.nothing()
    client.send(ENDPOINT, ["new", "old"], version=eds.version_info, nonce=eds.nonce)
    sequence = [client.recv() for _ in range(4)]
    assert [(r.type_url, names(r)) for r in sequence] == [
        (ENDPOINT, ["new"]),
        (LISTENER, ["l"]),
        (ROUTE, ["rt"]),
        (CLUSTER, ["new"]),  # the stale cluster goes last
    ]


def test_what_follows_a_new_cluster_is_sent_once_the_proxy_acks_the_clusters_without_asking_for_endpoints(
    server: Server, client: Client
) -> None:
    # A proxy that never asks for the new cluster's endpoints (it rejected the cluster, or it
    # times out waiting) ACKs or NACKs the CDS update once done with it: nothing stays held.
    server.set("r1", cluster("a"), cla("a"), listener("l"))
    client.send(CLUSTER, first=True)
    client.ack(client.recv())
    client.send(ENDPOINT, ["a"])
    client.ack(client.recv(), ["a"])
    client.send(LISTENER)
    first_lds = client.recv()
    client.ack(first_lds)
    server.set("r2", cluster("a"), cluster("b"), cla("a"), cla("b"), listener("l", 2))
    cds = client.recv()
    assert cds.type_url == CLUSTER
    assert client.nothing()  # `a` is unchanged (no endpoints again) and the listener is held
    client.ack(cds)
    lds = client.recv()
    assert (lds.type_url, names(lds)) == (LISTENER, ["l"])
    assert lds.version_info != first_lds.version_info


def test_a_changed_cluster_gets_its_unchanged_endpoints_again(server: Server, client: Client) -> None:
    server.set("r1", cluster("a"), cla("a"))
    client.send(CLUSTER, first=True)
    cds = client.recv()
    client.ack(cds)
    client.send(ENDPOINT, ["a"])
    eds = client.recv()
    client.ack(eds, ["a"])
    assert client.nothing()
    # The cluster changes (not its endpoints): Envoy rebuilds it, and the rebuilt cluster warms
    # until it has endpoints again. Without them Envoy waits 15 s.
    server.set("r2", cluster("a", timeout=9), cla("a"))
    new_cds = client.recv()
    assert new_cds.type_url == CLUSTER
    again = client.recv()
    assert (again.type_url, names(again)) == (ENDPOINT, ["a"])
    client.ack(new_cds)
    client.ack(again, ["a"])
    assert client.nothing()


def holding_a_and_b(server: Server, client: Client) -> Any:
    """The client holds clusters a and b and both their assignments, every response ACKed;
    returns the EDS response."""
    server.set("r1", cluster("a"), cluster("b"), cla("a"), cla("b"))
    client.send(CLUSTER, first=True)
    client.ack(client.recv())
    client.send(ENDPOINT, ["a", "b"])
    eds = client.recv()
    assert names(eds) == ["a", "b"]
    client.ack(eds, ["a", "b"])
    assert client.nothing()
    return eds


def test_an_endpoint_change_sends_only_the_changed_assignment_with_the_whole_sets_version(server: Server, client: Client) -> None:
    holding_a_and_b(server, client)

    server.set("r2", cluster("a"), cluster("b"), cla("a", port=2), cla("b"))
    push = client.recv()
    # Envoy keeps b's endpoints: a SotW EDS response need not repeat what did not change.
    assert (push.type_url, names(push)) == (ENDPOINT, ["a"])
    # Its version is the whole set's, as a proxy connecting now is told: ACKs and resumes hold.
    fresh = Client(server.port)
    try:
        fresh.send(ENDPOINT, ["a", "b"], first=True)
        whole = fresh.recv()
    finally:
        fresh.close()
    assert names(whole) == ["a", "b"] and whole.version_info == push.version_info
    client.ack(push, ["a", "b"])
    assert client.nothing()


def test_an_endpoint_change_after_a_nack_sends_the_whole_set(server: Server, client: Client) -> None:
    eds = holding_a_and_b(server, client)
    server.set("r2", cluster("a"), cluster("b"), cla("a", port=2), cla("b"))
    rejected = client.recv()
    client.send(ENDPOINT, ["a", "b"], version=eds.version_info, nonce=rejected.nonce, error="bad endpoint")
    # After a NACK what the proxy holds is not known: the next change carries every assignment.
    server.set("r3", cluster("a"), cluster("b"), cla("a", port=3), cla("b"))
    assert names(client.recv()) == ["a", "b"]


def test_a_cds_update_resends_the_endpoints_of_the_changed_clusters_only(server: Server, client: Client) -> None:
    holding_a_and_b(server, client)
    # `a` gets other settings: Envoy rebuilds it, and it warms until it has its endpoints again;
    # `b` is kept as it is and needs nothing.
    server.set("r2", cluster("a", timeout=9), cluster("b"), cla("a"), cla("b"))
    cds, eds = client.recv(), client.recv()
    assert (cds.type_url, names(cds)) == (CLUSTER, ["a", "b"])
    assert (eds.type_url, names(eds)) == (ENDPOINT, ["a"])
    client.ack(cds)
    client.ack(eds, ["a", "b"])
    assert client.nothing()


def test_api_listeners_are_served_by_name_only(server: Server, client: Client) -> None:
    hcm_listener = listener_pb2.Listener(name="backend", api_listener=api_listener_pb2.ApiListener())
    api = resource(LISTENER, "backend", hcm_listener, by_name_only=True)
    server.set("r1", listener("outbound:127.0.0.1:1"), api)
    client.send(LISTENER, first=True)
    assert names(client.recv()) == ["outbound:127.0.0.1:1"]
    other = Client(server.port)
    try:
        other.send(LISTENER, ["backend"], first=True)
        assert names(other.recv()) == ["backend"]
    finally:
        other.close()


# -- delta ----------------------------------------------------------------------------------------
def resource_names(response: Any) -> list[str]:
    return [r.name for r in response.resources]


def test_delta_wildcard_then_removed_resources(server: Server, delta: Client) -> None:
    server.set("r1", cluster("a"), cluster("b"))
    delta.send_delta(CLUSTER, first=True)
    first = delta.recv()
    assert resource_names(first) == ["a", "b"] and list(first.removed_resources) == []
    delta.send_delta(CLUSTER, nonce=first.nonce)
    assert delta.nothing()
    server.set("r2", cluster("a", timeout=7))
    second = delta.recv()
    assert resource_names(second) == ["a"]
    assert list(second.removed_resources) == ["b"]
    assert second.system_version_info == "r2"


def test_delta_subscription_changes_count_even_with_a_stale_nonce(server: Server, delta: Client) -> None:
    server.set("r1", cla("a"), cla("b"), cla("c"))
    delta.send_delta(ENDPOINT, subscribe=["a"], first=True)
    first = delta.recv()
    assert resource_names(first) == ["a"]
    delta.send_delta(ENDPOINT, subscribe=["b"], nonce="stale-nonce")
    assert resource_names(delta.recv()) == ["b"]
    delta.send_delta(ENDPOINT, unsubscribe=["a"], nonce="older")
    assert delta.nothing()
    server.set("r2", cla("a", port=5), cla("b"), cla("c"))
    assert delta.nothing()  # `a` changed, but it is no longer subscribed


def test_delta_initial_resource_versions_skip_what_a_reconnecting_client_has(server: Server, delta: Client) -> None:
    a, b = cluster("a"), cluster("b")
    server.set("r1", a, b)
    delta.send_delta(CLUSTER, initial={"a": a.version, "b": "outdated", "gone": "x"}, first=True)
    response = delta.recv()
    assert resource_names(response) == ["b"]
    assert list(response.removed_resources) == ["gone"]


def test_delta_subscribed_name_that_does_not_exist_is_reported_removed_once(server: Server, delta: Client) -> None:
    server.set("r1", cla("a"))
    delta.send_delta(ENDPOINT, subscribe=["a", "missing"], first=True)
    first = delta.recv()
    assert resource_names(first) == ["a"] and list(first.removed_resources) == ["missing"]
    delta.send_delta(ENDPOINT, nonce=first.nonce)
    assert delta.nothing()


def test_delta_nack_is_recorded_and_not_resent(server: Server, delta: Client) -> None:
    server.set("r1", listener("l", 1))
    delta.send_delta(LISTENER, first=True)
    good = delta.recv()
    delta.send_delta(LISTENER, nonce=good.nonce)
    server.set("r2", listener("l", 2))
    bad = delta.recv()
    delta.send_delta(LISTENER, nonce=bad.nonce, error="cannot bind")
    assert delta.nothing(0.6)
    assert [e[:3] for e in server.recorder.of("nack")] == [("nack", LISTENER, "r2")]
    server.set("r3", listener("l", 3))
    assert resource_names(delta.recv()) == ["l"]


def test_delta_cds_update_resends_the_endpoints_of_the_changed_clusters_only(server: Server, delta: Client) -> None:
    server.set("r1", cluster("a"), cluster("b"), cla("a"), cla("b"))
    delta.send_delta(CLUSTER, first=True)
    cds = delta.recv()
    delta.send_delta(CLUSTER, nonce=cds.nonce)
    delta.send_delta(ENDPOINT, subscribe=["a", "b"])
    eds = delta.recv()
    assert resource_names(eds) == ["a", "b"]
    delta.send_delta(ENDPOINT, nonce=eds.nonce)
    assert delta.nothing()
    server.set("r2", cluster("a", timeout=9), cluster("b"), cla("a"), cla("b"))
    changed_cds, again = delta.recv(), delta.recv()
    assert resource_names(changed_cds) == ["a"]
    # Envoy rebuilds `a`, which warms until it has its endpoints again; `b` is kept as it is.
    assert (again.type_url, resource_names(again)) == (ENDPOINT, ["a"])


def test_streams_report_open_and_close(server: Server) -> None:
    server.set("r1", cluster("a"))
    c = Client(server.port)
    c.send(CLUSTER, first=True)
    c.recv()
    c.close()
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not server.recorder.of("close"):
        time.sleep(0.05)
    assert server.recorder.of("open") == [("open", NODE, "sotw")]
    assert server.recorder.of("close") == [("close", NODE)]
