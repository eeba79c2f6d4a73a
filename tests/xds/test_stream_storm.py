"""A connect storm and the log of each stream's end, over real gRPC on 127.0.0.1.

Hundreds of proxies that open their streams at the same moment, each on its own TCP
connection as Envoys do, are all served their config; none of their streams fails. When a
stream ends, the server says once which node it was, SotW or delta, the status and the cause.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from reconciler.controlplane.grpc_setup import CONNECT_STORM_OPTIONS
from reconciler.xds.cache import ConfigCache
from reconciler.xds.resources import CLUSTER, LISTENER, ProxyResources
from reconciler.xds.server import AdsServer, NoCallbacks, add_ads_server
from tests.xds.ads_support import cla, cluster, listener

PROXIES = 300
QUEUED = 1_500
"""Streams that arrive while the server's loop is busy: more than gRPC core queues by default."""
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
"""Without it, every channel to the same address shares one subchannel: one TCP connection."""


class Served:
    """A real ADS server on its own loop in a thread, with a config for every proxy."""

    def __init__(self, options: list[tuple[str, Any]] | None = None) -> None:
        self.options = options or []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cache = ConfigCache()
        self.ads = AdsServer(self.cache, NoCallbacks())
        self.port = self.call(self._start())

    async def _start(self) -> int:
        self.grpc = grpc.aio.server(options=self.options)
        add_ads_server(self.grpc, self.ads)
        port = self.grpc.add_insecure_port("127.0.0.1:0")
        await self.grpc.start()
        shared = ProxyResources.build([cluster("svc-0"), cla("svc-0"), listener("outbound:svc-0")])
        for i in range(QUEUED):
            self.cache.set(f"default.dp-{i}", shared, "r1")
        return int(port)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.call(self.grpc.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    s = Served(CONNECT_STORM_OPTIONS)
    yield s
    s.stop()


def first_request(node_id: str, type_url: str = CLUSTER) -> discovery_pb2.DiscoveryRequest:
    return discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id=node_id), type_url=type_url)


async def subscribe(port: int, node_id: str) -> list[str]:
    """Open a SotW stream on its own connection, subscribe to clusters and listeners, ACK both,
    and return the names of what was served."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OWN_CONNECTION) as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(timeout=20)
        await call.write(first_request(node_id))
        await call.write(discovery_pb2.DiscoveryRequest(type_url=LISTENER))
        names = []
        for _ in range(2):
            response = await call.read()
            names += [a.type_url.rsplit(".", 1)[1] for a in response.resources]
            await call.write(
                discovery_pb2.DiscoveryRequest(
                    type_url=response.type_url, version_info=response.version_info, response_nonce=response.nonce
                )
            )
        call.cancel()
        return sorted(names)


def test_a_connect_storm_of_hundreds_of_proxies_is_served_in_full(served: Served) -> None:
    async def storm() -> list[Any]:
        return await asyncio.gather(*(subscribe(served.port, f"default.dp-{i}") for i in range(PROXIES)), return_exceptions=True)

    results = asyncio.run(storm())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert failed == []
    assert all(r == ["Cluster", "Listener"] for r in results)


async def first_response(port: int, node_id: str, opened: asyncio.Event, go: asyncio.Event) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OWN_CONNECTION) as channel:
        await channel.channel_ready()
        opened.set()
        await go.wait()
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(timeout=30)
        await call.write(first_request(node_id))
        response = await call.read()
        call.cancel()
        return len(response.resources)


def test_streams_that_arrive_while_the_server_is_busy_are_queued_not_refused(served: Served) -> None:
    """gRPC core refuses streams at random once 1,000 wait for the servicer, by default; the
    servicer takes them one by one from its event loop, so a busy loop makes them wait."""

    async def storm() -> list[Any]:
        opened, go = [asyncio.Event() for _ in range(QUEUED)], asyncio.Event()
        clients = [asyncio.ensure_future(first_response(served.port, f"default.dp-{i}", opened[i], go)) for i in range(QUEUED)]
        await asyncio.gather(*(e.wait() for e in opened))
        served.loop.call_soon_threadsafe(time.sleep, 2)  # the server's loop is busy (a reconcile, say)
        await asyncio.sleep(0.1)
        go.set()  # every proxy opens its stream now
        return await asyncio.gather(*clients, return_exceptions=True)

    results = asyncio.run(storm())
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert results == [1] * QUEUED


def ends(caplog: pytest.LogCaptureFixture, node_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "stream ended" and getattr(r, "node", "") == node_id]


async def wait_for_end(caplog: pytest.LogCaptureFixture, node_id: str) -> list[logging.LogRecord]:
    for _ in range(100):
        if ends(caplog, node_id):
            await asyncio.sleep(0.3)  # and no second line follows
            break
        await asyncio.sleep(0.05)
    return ends(caplog, node_id)


def test_a_stream_the_proxy_cancels_is_logged_once_with_its_node_and_cause(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    async def cancelled() -> list[logging.LogRecord]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}", options=OWN_CONNECTION) as channel:
            call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
            await call.write(first_request("default.dp-1"))
            await call.read()
            call.cancel()
            return await wait_for_end(caplog, "default.dp-1")

    with caplog.at_level(logging.INFO, logger="reconciler.xds.server"):
        records = asyncio.run(cancelled())
    assert [(r.levelname, r.mode, r.code, r.cause) for r in records] == [  # type: ignore[attr-defined]
        ("INFO", "sotw", "CANCELLED", "proxy cancelled the stream or closed its connection")
    ]


def test_a_delta_stream_past_its_deadline_is_logged_as_such(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    async def expired() -> list[logging.LogRecord]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}", options=OWN_CONNECTION) as channel:
            call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources(timeout=0.5)
            await call.write(discovery_pb2.DeltaDiscoveryRequest(node=base_pb2.Node(id="default.dp-2"), type_url=CLUSTER))
            await call.read()
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call.read()
            assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            return await wait_for_end(caplog, "default.dp-2")

    with caplog.at_level(logging.INFO, logger="reconciler.xds.server"):
        records = asyncio.run(expired())
    assert [(r.levelname, r.mode, r.code) for r in records] == [("INFO", "delta", "DEADLINE_EXCEEDED")]  # type: ignore[attr-defined]
