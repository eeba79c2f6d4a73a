"""The HDS stream over a real gRPC server, with the control plane's side replaced by a recorder:
how it admits, what it sends, what it hands on, and how it ends."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.service.health.v3 import hds_pb2, hds_pb2_grpc

from reconciler.xds.hds import HdsServer, add_hds_server
from reconciler.xds.protocol import XdsRejected
from reconciler.xds.server import ADMISSION_FAILED
from tests.xds.ads_support import LoopServer


def _spec(interval: int) -> hds_pb2.HealthCheckSpecifier:
    spec = hds_pb2.HealthCheckSpecifier(cluster_health_checks=[hds_pb2.ClusterHealthCheck(cluster_name="localhost:80")])
    spec.interval.FromSeconds(interval)
    return spec


class Recorder:
    """Admits default.web (refuses default.refused, fails on default.buggy); hands out `spec`."""

    def __init__(self) -> None:
        self.spec: hds_pb2.HealthCheckSpecifier | None = _spec(5)
        self.health: queue.Queue[tuple[str, hds_pb2.EndpointHealthResponse]] = queue.Queue()
        self.closed: queue.Queue[str] = queue.Queue()

    async def on_hds_open(self, node: base_pb2.Node) -> str:
        if node.id == "default.refused":
            raise XdsRejected(grpc.StatusCode.PERMISSION_DENIED, "not this one")
        if node.id == "default.buggy":
            raise ValueError("secret internals: /srv/state/keys")
        return str(node.id)

    def hds_specifier(self, node_id: str, node: base_pb2.Node) -> hds_pb2.HealthCheckSpecifier | None:
        return self.spec

    def on_health(self, node_id: str, response: hds_pb2.EndpointHealthResponse) -> None:
        self.health.put((node_id, response))

    def on_hds_close(self, node_id: str) -> None:
        self.closed.put(node_id)


class Server(LoopServer):
    def __init__(self) -> None:
        self.recorder = Recorder()
        super().__init__(
            lambda grpc_server: add_hds_server(grpc_server, HdsServer(self.recorder, refresh_interval=0.1, first_request_timeout=0.5))
        )


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


Message = hds_pb2.HealthCheckRequestOrEndpointHealthResponse


def _hello(node_id: str) -> Any:
    return Message(health_check_request=hds_pb2.HealthCheckRequest(node=base_pb2.Node(id=node_id)))


def _ended(server: Server, *messages: Any) -> grpc.RpcError:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        done = threading.Event()

        def requests() -> Iterator[Any]:
            yield from messages
            done.wait(10)

        try:
            for _ in hds_pb2_grpc.HealthDiscoveryServiceStub(channel).StreamHealthCheck(requests(), timeout=10):
                pass
        except grpc.RpcError as e:
            return e
        finally:
            done.set()
    raise AssertionError("the stream was not ended by the server")


def test_refusals_end_the_stream_with_a_short_status(server: Server) -> None:
    assert _ended(server).code() == grpc.StatusCode.DEADLINE_EXCEEDED  # nothing sent within the first request timeout
    no_node = _ended(server, Message(endpoint_health_response=hds_pb2.EndpointHealthResponse()))
    assert no_node.code() == grpc.StatusCode.INVALID_ARGUMENT
    refused = _ended(server, _hello("default.refused"))
    assert (refused.code(), refused.details()) == (grpc.StatusCode.PERMISSION_DENIED, "not this one")
    buggy = _ended(server, _hello("default.buggy"))
    assert (buggy.code(), buggy.details()) == (grpc.StatusCode.INTERNAL, ADMISSION_FAILED)


def test_the_specifier_goes_out_reports_come_in_and_a_change_is_sent_on_the_open_stream(server: Server) -> None:
    server.recorder.spec = _spec(5)
    outgoing: queue.Queue[Any] = queue.Queue()
    outgoing.put(_hello("default.web"))

    def requests() -> Iterator[Any]:
        while (m := outgoing.get(timeout=10)) is not None:
            yield m

    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        answers = hds_pb2_grpc.HealthDiscoveryServiceStub(channel).StreamHealthCheck(requests(), timeout=10)
        assert next(answers) == _spec(5)
        report = hds_pb2.EndpointHealthResponse()
        report.cluster_endpoints_health.add(cluster_name="localhost:80").locality_endpoints_health.add().endpoints_health.add(
            health_status=health_check_pb2.UNHEALTHY
        )
        outgoing.put(Message(endpoint_health_response=report))
        assert server.recorder.health.get(timeout=5) == ("default.web", report)
        server.recorder.spec = _spec(7)  # a commit changed the Dataplane's probe
        assert next(answers) == _spec(7)
        outgoing.put(None)  # the proxy half-closes
        with pytest.raises(StopIteration):
            next(answers)
    assert server.recorder.closed.get(timeout=5) == "default.web"


def test_a_malformed_report_ends_the_stream_and_its_health_is_forgotten(server: Server) -> None:
    server.recorder.spec = _spec(5)
    while not server.recorder.closed.empty():
        server.recorder.closed.get()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        method = channel.stream_stream(
            "/envoy.service.health.v3.HealthDiscoveryService/StreamHealthCheck",
            request_serializer=lambda raw: raw,
            response_deserializer=hds_pb2.HealthCheckSpecifier.FromString,
        )
        outgoing: queue.Queue[bytes | None] = queue.Queue()
        outgoing.put(_hello("default.web").SerializeToString())
        answers = method(iter(lambda: outgoing.get(timeout=10), None), timeout=10)
        assert next(answers) == _spec(5)
        outgoing.put(b"\x12\xff")  # field 2 (endpoint_health_response) with a length past the end
        with pytest.raises(grpc.RpcError) as ended:
            next(answers)
        outgoing.put(None)
    assert (ended.value.code(), ended.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "malformed EndpointHealthResponse")
    assert server.recorder.closed.get(timeout=5) == "default.web"
