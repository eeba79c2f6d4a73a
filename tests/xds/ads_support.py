"""An ADS server on a loop in a thread and an ADS client over real gRPC on 127.0.0.1, for the
xDS protocol tests: the client plays Envoy, request by request; the server's config comes from
any `ConfigWatcher` (the real ConfigCache, or a test's fake one) and its stream callbacks are
recorded.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from reconciler.xds.cache import ConfigCache, ConfigWatcher, NodeConfig
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyResources, XdsResource, resource
from reconciler.xds.server import AdsServer, add_ads_server

NODE = "default.web"


def cluster(name: str, timeout: int = 5) -> XdsResource:
    msg = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    msg.connect_timeout.seconds = timeout
    return resource(CLUSTER, name, msg)


def cla(name: str, port: int = 1) -> XdsResource:
    msg = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    msg.endpoints.add().lb_endpoints.add().endpoint.address.socket_address.port_value = port
    return resource(ENDPOINT, name, msg)


def listener(name: str, port: int = 1) -> XdsResource:
    msg = listener_pb2.Listener(name=name)
    msg.address.socket_address.address = "127.0.0.1"
    msg.address.socket_address.port_value = port
    return resource(LISTENER, name, msg)


def route(name: str, cluster_name: str = "a") -> XdsResource:
    msg = route_pb2.RouteConfiguration(name=name)
    vh = msg.virtual_hosts.add(name="vh", domains=["*"])
    vh.routes.add().route.cluster = cluster_name
    return resource(ROUTE, name, msg)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.calls: list[tuple[str, str, str, str, str]] = []
        """Every on_sent/on_ack/on_nack in full: (kind, node, type URL, version, revision)."""

    async def on_open(self, node: Any, mode: str) -> str:
        self.events.append(("open", node.id, mode))
        return str(node.id)

    def on_close(self, node_id: str, mode: str) -> None:
        self.events.append(("close", node_id))

    def on_sent(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        self.events.append(("sent", type_url, revision))
        self.calls.append(("sent", node_id, type_url, version, revision))

    def on_ack(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        self.events.append(("ack", type_url, revision))
        self.calls.append(("ack", node_id, type_url, version, revision))

    def on_nack(self, node_id: str, type_url: str, version: str, revision: str, message: str) -> None:
        self.events.append(("nack", type_url, revision, message))
        self.calls.append(("nack", node_id, type_url, version, revision))

    def on_resumed(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        self.events.append(("resumed", type_url, revision))
        self.calls.append(("resumed", node_id, type_url, version, revision))

    def on_config(self, node_id: str, config: NodeConfig) -> None:
        self.events.append(("config", node_id, config.revision))

    def on_stream_end(self, mode: str, code: str) -> None:
        self.events.append(("end", mode, code))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == kind]


class LoopServer:
    """A grpc.aio server on 127.0.0.1 (a free port) with its event loop in a thread; `add`
    registers the services on it, in the loop (grpc.aio servers belong to one)."""

    def __init__(self, add: Callable[[grpc.aio.Server], None]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self.call(self._start(add))

    async def _start(self, add: Callable[[grpc.aio.Server], None]) -> int:
        self.grpc = grpc.aio.server()
        add(self.grpc)
        port = self.grpc.add_insecure_port("127.0.0.1:0")
        await self.grpc.start()
        return int(port)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        self.call(self.grpc.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Server(LoopServer):
    """The ADS server on a LoopServer; `set` changes the cache from the test."""

    def __init__(self, watcher: ConfigWatcher | None = None) -> None:
        self.cache = ConfigCache()
        self.watcher: ConfigWatcher = watcher if watcher is not None else self.cache
        self.recorder = Recorder()
        super().__init__(lambda server: add_ads_server(server, AdsServer(self.watcher, self.recorder)))

    def set(self, revision: str, *items: XdsResource) -> None:
        async def update() -> None:
            self.cache.set(NODE, ProxyResources.build(items), revision)

        self.call(update())


class Client:
    """One ADS stream, as Envoy would open it."""

    def __init__(self, port: int, delta: bool = False, node: str = NODE) -> None:
        self.node = node
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        self.requests: queue.Queue[Any] = queue.Queue()
        self.responses: queue.Queue[Any] = queue.Queue()
        call = (stub.DeltaAggregatedResources if delta else stub.StreamAggregatedResources)(iter(self.requests.get, None))
        self.call = call
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.responses.put(response)
        except grpc.RpcError as e:
            self.responses.put(e)

    def send(
        self,
        type_url: str,
        names: list[str] | None = None,
        *,
        version: str = "",
        nonce: str = "",
        error: str | None = None,
        first: bool = False,
    ) -> None:
        req = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=names or [], version_info=version, response_nonce=nonce)
        if first:
            req.node.id = self.node
        if error is not None:
            req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        self.requests.put(req)

    def send_delta(
        self,
        type_url: str,
        *,
        subscribe: list[str] | None = None,
        unsubscribe: list[str] | None = None,
        nonce: str = "",
        error: str | None = None,
        initial: dict[str, str] | None = None,
        first: bool = False,
    ) -> None:
        req = discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=subscribe or [],
            resource_names_unsubscribe=unsubscribe or [],
            response_nonce=nonce,
            initial_resource_versions=initial or {},
        )
        if first:
            req.node.id = self.node
        if error is not None:
            req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        self.requests.put(req)

    def recv(self, timeout: float = 3.0) -> Any:
        response = self.responses.get(timeout=timeout)
        if isinstance(response, Exception):
            raise response
        return response

    def nothing(self, wait: float = 0.4) -> bool:
        try:
            response = self.responses.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected response: {response}")

    def ack(self, response: Any, names: list[str] | None = None) -> None:
        self.send(response.type_url, names, version=response.version_info, nonce=response.nonce)

    def close(self) -> None:
        self.requests.put(None)
        self.channel.close()


def names(response: Any) -> list[str]:
    out = []
    for any_msg in response.resources:
        type_url = any_msg.type_url
        if type_url == CLUSTER:
            msg: Any = cluster_pb2.Cluster()
        elif type_url == ENDPOINT:
            msg = endpoint_pb2.ClusterLoadAssignment()
        elif type_url == LISTENER:
            msg = listener_pb2.Listener()
        else:
            msg = route_pb2.RouteConfiguration()
        any_msg.Unpack(msg)
        out.append(getattr(msg, "name", "") or getattr(msg, "cluster_name", ""))
    return out
