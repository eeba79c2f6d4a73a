"""The ADS server against a fake cache, as go-control-plane tests its server: the watcher is a
tiny object the test drives (what `fetch` returns, when `changed` wakes, and with what), while
the gRPC server and the client streams are real, on 127.0.0.1.

This pins what the server does with what the watcher tells it, apart from ConfigCache's own
rules (tests/xds/test_cache.py): Envoy's update order, ACK/NACK bookkeeping, versions and
nonces, and that a change of one node reaches that node's stream only.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from reconciler.xds.cache import NodeConfig
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyResources, XdsResource
from reconciler.xds.server import XdsRejected
from tests.xds.ads_support import NODE, Client, Server, cla, cluster, listener, names, route

OTHER = "default.other"


class FakeCache:
    """A ConfigWatcher by hand. `fetch` returns the node's current config; each watch
    (`changed`) takes, in order, one of what the test `push`es for that node (a config, None
    for "removed", or an exception the next `fetch` raises), and records the generation each
    watch was opened after."""

    def __init__(self) -> None:
        self.current: dict[str, NodeConfig] = {}
        self.queues: dict[str, deque[NodeConfig | None | Exception]] = {}
        self.watches: dict[str, asyncio.Future[None]] = {}
        self.raising: dict[str, Exception] = {}
        self.waits: list[tuple[str, int]] = []
        self.generation = 0

    def config(self, revision: str, *items: XdsResource) -> NodeConfig:
        self.generation += 1
        return NodeConfig(ProxyResources.build(items), revision, self.generation)

    def fetch(self, node_id: str) -> NodeConfig | None:
        error = self.raising.pop(node_id, None)
        if error is not None:
            raise error
        return self.current.get(node_id)

    def changed(self, node_id: str, after_generation: int) -> asyncio.Future[None]:
        self.waits.append((node_id, after_generation))
        watch = self.watches[node_id] = asyncio.get_running_loop().create_future()
        self._deliver(node_id)
        return watch

    def push(self, node_id: str, item: NodeConfig | None | Exception) -> None:
        """Wake the node's watch (call on the server's loop)."""
        self.queues.setdefault(node_id, deque()).append(item)
        self._deliver(node_id)

    def _deliver(self, node_id: str) -> None:
        queue = self.queues.get(node_id)
        if node_id not in self.watches or not queue:
            return
        item = queue.popleft()
        if isinstance(item, Exception):
            self.raising[node_id] = item
        elif item is not None:
            self.current[node_id] = item
        else:
            self.current.pop(node_id, None)
        self.watches.pop(node_id).set_result(None)


class Harness:
    def __init__(self) -> None:
        self.fake = FakeCache()
        self.server = Server(self.fake)
        self.clients: list[Client] = []

    def start(self, node_id: str, revision: str, *items: XdsResource) -> NodeConfig:
        """The node's config before any stream opens (what `fetch` gives a new stream)."""
        config = self.fake.config(revision, *items)
        self.fake.current[node_id] = config
        return config

    def push(self, node_id: str, item: NodeConfig | None | Exception) -> None:
        async def push() -> None:
            self.fake.push(node_id, item)

        self.server.call(push())

    def client(self, *, delta: bool = False, node: str = NODE) -> Client:
        c = Client(self.server.port, delta=delta, node=node)
        self.clients.append(c)
        return c

    def waits_of(self, node_id: str) -> list[int]:
        async def read() -> list[int]:
            return [g for n, g in self.fake.waits if n == node_id]

        return self.server.call(read())  # type: ignore[no-any-return]

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.server.stop()


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.stop()


def eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def subscribe_all_sotw(c: Client) -> dict[str, Any]:
    """Subscribe CDS, EDS (a), LDS, RDS (rt) as Envoy does, ACKing each; the last responses by type."""
    last = {}
    c.send(CLUSTER, first=True)
    last[CLUSTER] = c.recv()
    c.ack(last[CLUSTER])
    c.send(ENDPOINT, ["a"])
    last[ENDPOINT] = c.recv()
    c.ack(last[ENDPOINT], ["a"])
    c.send(LISTENER)
    last[LISTENER] = c.recv()
    c.ack(last[LISTENER])
    c.send(ROUTE, ["rt"])
    last[ROUTE] = c.recv()
    c.ack(last[ROUTE], ["rt"])
    return last


# -- Envoy's order ----------------------------------------------------------------------------------
def test_sotw_change_goes_out_cds_before_eds_and_lds_before_rds(h: Harness) -> None:
    h.start(NODE, "r1", cluster("a"), cla("a"), listener("l"), route("rt", "a"))
    c = h.client()
    subscribe_all_sotw(c)
    assert c.nothing()
    h.push(NODE, h.fake.config("r2", cluster("a", 9), cla("a", 2), listener("l", 2), route("rt", "b")))
    order = [c.recv().type_url for _ in range(4)]
    assert order == [CLUSTER, ENDPOINT, LISTENER, ROUTE]


def test_delta_change_goes_out_cds_before_eds_and_lds_before_rds(h: Harness) -> None:
    h.start(NODE, "r1", cluster("a"), cla("a"), listener("l"), route("rt", "a"))
    c = h.client(delta=True)
    for type_url, subscribe in ((CLUSTER, None), (ENDPOINT, ["a"]), (LISTENER, None), (ROUTE, ["rt"])):
        c.send_delta(type_url, subscribe=subscribe, first=type_url == CLUSTER)
        c.send_delta(type_url, nonce=c.recv().nonce)
    assert c.nothing()
    h.push(NODE, h.fake.config("r2", cluster("a", 9), cla("a", 2), listener("l", 2), route("rt", "b")))
    responses = [c.recv() for _ in range(4)]
    assert [r.type_url for r in responses] == [CLUSTER, ENDPOINT, LISTENER, ROUTE]
    assert {r.system_version_info for r in responses} == {"r2"}


# -- ACK / NACK bookkeeping, versions and nonces -------------------------------------------------------
def test_sotw_ack_and_nack_are_reported_with_the_version_and_revision_they_answer(h: Harness) -> None:
    h.start(NODE, "r1", cluster("a"))
    c = h.client()
    c.send(CLUSTER, first=True)
    first = c.recv()
    c.ack(first)
    eventually(lambda: any(call[0] == "ack" for call in h.server.recorder.calls))  # before a newer response makes it stale
    h.push(NODE, h.fake.config("r2", cluster("a", 9)))
    second = c.recv()
    c.send(CLUSTER, version=first.version_info, nonce=second.nonce, error="bad cluster")
    eventually(lambda: any(call[0] == "nack" for call in h.server.recorder.calls))
    assert h.server.recorder.calls == [
        ("sent", NODE, CLUSTER, first.version_info, "r1"),
        ("ack", NODE, CLUSTER, first.version_info, "r1"),
        ("sent", NODE, CLUSTER, second.version_info, "r2"),
        ("nack", NODE, CLUSTER, second.version_info, "r2"),
    ]
    assert int(second.nonce) > int(first.nonce)
    assert second.version_info != first.version_info


def test_sotw_ack_with_an_old_nonce_is_not_counted(h: Harness) -> None:
    h.start(NODE, "r1", cluster("a"))
    c = h.client()
    c.send(CLUSTER, first=True)
    first = c.recv()
    h.push(NODE, h.fake.config("r2", cluster("a", 9)))
    second = c.recv()
    c.ack(first)  # answers a response that has been superseded
    assert c.nothing()
    c.ack(second)
    eventually(lambda: any(call[0] == "ack" for call in h.server.recorder.calls))
    assert [call for call in h.server.recorder.calls if call[0] == "ack"] == [("ack", NODE, CLUSTER, second.version_info, "r2")]


def test_sotw_a_type_the_proxy_drops_is_no_longer_awaited_and_is_answered_when_asked_again(h: Harness) -> None:
    # Envoy ignores responses for a type it no longer watches (mTLS off: no secret is referenced)
    # and unsubscribes with the nonce of the last response it read; status must not wait forever.
    h.start(NODE, "r1", cluster("a"), cla("a"))
    c = h.client()
    c.send(CLUSTER, first=True)
    c.ack(c.recv())
    c.send(ENDPOINT, ["a"])
    eds = c.recv()
    c.ack(eds, ["a"])
    eventually(lambda: len(h.server.recorder.of("ack")) == 2)
    h.push(NODE, h.fake.config("r2", cluster("b")))
    cds, eds_again = c.recv(), c.recv()  # CDS with the stale cluster, EDS
    c.ack(cds)  # done with the new cluster `b` (without asking for its endpoints): the final CDS follows
    pushed = {r.type_url: r for r in (cds, eds_again, c.recv())}
    assert names(pushed[ENDPOINT]) == []
    c.send(ENDPOINT, [], version=eds.version_info, nonce=eds.nonce)
    eventually(lambda: ("ack", NODE, ENDPOINT, pushed[ENDPOINT].version_info, "r2") in h.server.recorder.calls)
    h.push(NODE, h.fake.config("r3", cluster("b", 9), cla("b")))
    assert c.recv().type_url == CLUSTER
    assert c.nothing()  # nothing for the type it dropped
    c.send(ENDPOINT, ["b"], version=eds.version_info, nonce=eds.nonce)
    again = c.recv()
    assert (again.type_url, names(again)) == (ENDPOINT, ["b"])


def test_delta_a_type_the_proxy_drops_is_no_longer_awaited(h: Harness) -> None:
    h.start(NODE, "r1", cluster("a"), cla("a"))
    c = h.client(delta=True)
    c.send_delta(CLUSTER, first=True)
    c.send_delta(CLUSTER, nonce=c.recv().nonce)
    c.send_delta(ENDPOINT, subscribe=["a"])
    eds = c.recv()
    c.send_delta(ENDPOINT, nonce=eds.nonce)
    eventually(lambda: len(h.server.recorder.of("ack")) == 2)
    h.push(NODE, h.fake.config("r2", cluster("b")))
    pushed = {r.type_url: r for r in (c.recv(), c.recv())}  # CDS, then EDS removing "a"
    assert list(pushed[ENDPOINT].removed_resources) == ["a"]
    c.send_delta(ENDPOINT, unsubscribe=["a"], nonce=eds.nonce)  # it ignored the removal: it no longer watched "a"
    eventually(lambda: ("ack", NODE, ENDPOINT, pushed[ENDPOINT].nonce, "r2") in h.server.recorder.calls)
    h.push(NODE, h.fake.config("r3", cluster("b", 9), cla("b")))
    assert c.recv().type_url == CLUSTER
    assert c.nothing()  # nothing for the type it dropped
    c.send_delta(ENDPOINT, subscribe=["b"])
    again = c.recv()
    assert (again.type_url, [x.name for x in again.resources]) == (ENDPOINT, ["b"])


def test_delta_ack_and_nack_are_reported_with_nonce_and_revision(h: Harness) -> None:
    h.start(NODE, "r1", listener("l", 1))
    c = h.client(delta=True)
    c.send_delta(LISTENER, first=True)
    good = c.recv()
    c.send_delta(LISTENER, nonce=good.nonce)
    eventually(lambda: any(call[0] == "ack" for call in h.server.recorder.calls))  # before a newer response makes it stale
    h.push(NODE, h.fake.config("r2", listener("l", 2)))
    bad = c.recv()
    c.send_delta(LISTENER, nonce=bad.nonce, error="cannot bind")
    eventually(lambda: any(call[0] == "nack" for call in h.server.recorder.calls))
    assert h.server.recorder.calls == [
        ("sent", NODE, LISTENER, good.nonce, "r1"),
        ("ack", NODE, LISTENER, good.nonce, "r1"),
        ("sent", NODE, LISTENER, bad.nonce, "r2"),
        ("nack", NODE, LISTENER, bad.nonce, "r2"),
    ]
    assert c.nothing()  # the rejected listener is not sent again


def test_sotw_version_is_the_content_so_equal_content_has_equal_versions_and_is_not_resent(h: Harness) -> None:
    h.start(NODE, "r1", cluster("a"), cluster("b"))
    h.start(OTHER, "r7", cluster("a"), cluster("b"))
    c, other = h.client(), h.client(node=OTHER)
    c.send(CLUSTER, first=True)
    other.send(CLUSTER, first=True)
    mine, theirs = c.recv(), other.recv()
    assert mine.version_info == theirs.version_info
    c.ack(mine)
    # The watcher wakes with a new revision but the same resources: nothing to send.
    h.push(NODE, h.fake.config("r2", cluster("a"), cluster("b")))
    assert c.nothing()


# -- one node's change reaches that node only -----------------------------------------------------------
def test_a_change_is_pushed_to_the_stream_of_its_node_only(h: Harness) -> None:
    start = h.start(NODE, "r1", cluster("a"))
    other_start = h.start(OTHER, "r1", cluster("a"))
    c, other = h.client(), h.client(node=OTHER)
    c.send(CLUSTER, first=True)
    other.send(CLUSTER, first=True)
    c.ack(c.recv())
    other.ack(other.recv())
    changed = h.fake.config("r2", cluster("a"), cluster("new"))
    h.push(NODE, changed)
    assert names(c.recv()) == ["a", "new"]
    assert other.nothing()
    # Each stream watches its own node, after the generation it last saw.
    eventually(lambda: h.waits_of(NODE) == [start.generation, changed.generation])
    assert h.waits_of(OTHER) == [other_start.generation]


def test_config_callback_reports_what_each_stream_has_pushed(h: Harness) -> None:
    h.start(NODE, "r1", cluster("a"))
    c = h.client()
    c.send(CLUSTER, first=True)
    c.ack(c.recv())
    h.push(NODE, h.fake.config("r2", cluster("b")))
    c.recv()
    eventually(lambda: ("config", NODE, "r2") in h.server.recorder.events)
    assert [e for e in h.server.recorder.events if e[0] == "config"] == [("config", NODE, "r1"), ("config", NODE, "r2")]


# -- what the watcher says about the node ---------------------------------------------------------------
def test_a_node_without_config_is_answered_once_the_watcher_has_one(h: Harness) -> None:
    c = h.client()
    c.send(CLUSTER, first=True)
    assert c.nothing()
    eventually(lambda: h.waits_of(NODE) == [-1])
    h.push(NODE, h.fake.config("r1", cluster("a")))
    assert names(c.recv()) == ["a"]


def test_a_removed_node_keeps_its_stream_and_gets_nothing_until_it_has_config_again(h: Harness) -> None:
    h.start(NODE, "r1", cluster("a"))
    c = h.client()
    c.send(CLUSTER, first=True)
    c.ack(c.recv())
    h.push(NODE, None)
    assert c.nothing()
    h.push(NODE, h.fake.config("r3", cluster("b")))
    assert names(c.recv()) == ["a", "b"]  # `a` stays until the stale cluster is removed last
    assert names(c.recv()) == ["b"]


def test_a_watcher_that_refuses_the_node_ends_its_stream_with_the_given_status(h: Harness) -> None:
    h.start(NODE, "r1", cluster("a"))
    c = h.client()
    c.send(CLUSTER, first=True)
    c.ack(c.recv())
    h.push(NODE, XdsRejected(grpc.StatusCode.PERMISSION_DENIED, "token revoked"))
    with pytest.raises(grpc.RpcError) as ended:
        c.recv()
    assert ended.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert ended.value.details() == "token revoked"
    eventually(lambda: h.server.recorder.of("close") == [("close", NODE)])


# -- a proxy that reconnects (to this replica or another) -------------------------------------------------
def test_sotw_reconnect_that_names_the_current_version_gets_nothing_and_counts_as_acked(h: Harness) -> None:
    h.start(NODE, "r1", cluster("a"), cluster("b"))
    first = h.client()
    first.send(CLUSTER, first=True)
    served = first.recv()
    first.ack(served)
    first.close()
    # A new stream whose first request names the version it holds: as go-control-plane, no response.
    again = h.client()
    again.send(CLUSTER, version=served.version_info, first=True)
    assert again.nothing()
    eventually(lambda: ("resumed", NODE, CLUSTER, served.version_info, "r1") in h.server.recorder.calls)
    # It is still watched: the next change reaches it.
    h.push(NODE, h.fake.config("r2", cluster("a"), cluster("b"), cluster("c")))
    assert names(again.recv()) == ["a", "b", "c"]


def test_sotw_reconnect_holding_an_older_version_gets_the_current_one(h: Harness) -> None:
    h.start(NODE, "r2", cluster("a"), cluster("b"))
    c = h.client()
    c.send(CLUSTER, version="0123456789abcdef", first=True)
    assert names(c.recv()) == ["a", "b"]
    assert not any(call[0] == "resumed" for call in h.server.recorder.calls)


def test_delta_reconnect_that_has_every_resource_gets_nothing(h: Harness) -> None:
    h.start(NODE, "r1", cluster("a"), cluster("b"))
    first = h.client(delta=True)
    first.send_delta(CLUSTER, first=True)
    served = first.recv()
    first.send_delta(CLUSTER, nonce=served.nonce)
    first.close()
    again = h.client(delta=True)
    again.send_delta(CLUSTER, initial={r.name: r.version for r in served.resources}, first=True)
    assert again.nothing()
    eventually(lambda: ("resumed", CLUSTER, "r1") in h.server.recorder.events)
    # One resource the client lacks: only that one is sent.
    stale = h.client(delta=True)
    stale.send_delta(CLUSTER, initial={"a": served.resources[0].version}, first=True)
    assert [r.name for r in stale.recv().resources] == ["b"]
