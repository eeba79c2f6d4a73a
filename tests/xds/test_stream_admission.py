"""How the ADS server ends streams it does not serve, over a real gRPC stream.

The proxy always gets a short status it can act on: DEADLINE_EXCEEDED for a stream that
never sends its first request, the status of `XdsRejected` for a refused one, INTERNAL with
a fixed message when admission itself fails, and INVALID_ARGUMENT for bytes that are not a
DiscoveryRequest; never gRPC's UNKNOWN with a Python exception's text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from reconciler.xds.cache import ConfigCache
from reconciler.xds.resources import CLUSTER
from reconciler.xds.server import AdsServer, NoCallbacks, XdsRejected, add_ads_server
from tests.xds.ads_support import LoopServer

SOTW_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


class Admission(NoCallbacks):
    """Admits default.web, refuses default.refused, and fails as a bug would (an exception
    that is not XdsRejected) for default.buggy."""

    async def on_open(self, node: base_pb2.Node, mode: str) -> str:
        if node.id == "default.refused":
            raise XdsRejected(grpc.StatusCode.PERMISSION_DENIED, "not this one")
        if node.id == "default.buggy":
            raise ValueError("secret internals: /srv/state/dataplane-tokens/1.pem")
        return str(node.id)


def _server(first_request_timeout: float) -> LoopServer:
    return LoopServer(
        lambda grpc_server: add_ads_server(grpc_server, AdsServer(ConfigCache(), Admission(), first_request_timeout=first_request_timeout))
    )


@pytest.fixture(scope="module")
def server() -> Iterator[LoopServer]:
    s = _server(first_request_timeout=0.3)
    yield s
    s.stop()


def end_of(server: LoopServer, *requests: bytes) -> grpc.RpcError:
    """Send these raw messages on a SotW stream, keep it open, and return how it ended."""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call: Any = channel.stream_stream(SOTW_METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        done = threading.Event()

        def messages() -> Iterator[bytes]:
            yield from requests
            done.wait(15)  # the stream stays open until the server ends it

        try:
            for _ in call(messages(), timeout=15):
                pass
        except grpc.RpcError as e:
            return e
        finally:
            done.set()
    raise AssertionError("the stream ended without an error")


def request(node_id: str) -> bytes:
    req = discovery_pb2.DiscoveryRequest(type_url=CLUSTER)
    req.node.id = node_id
    return bytes(req.SerializeToString())


def test_stream_without_a_first_request_is_closed_after_the_limit(server: LoopServer) -> None:
    error = end_of(server)
    assert (error.code(), error.details()) == (grpc.StatusCode.DEADLINE_EXCEEDED, "no DiscoveryRequest within 0.3s of opening the stream")


def test_refused_stream_gets_the_status_admission_chose(server: LoopServer) -> None:
    error = end_of(server, request("default.refused"))
    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, "not this one")


def test_failing_admission_is_internal_with_a_short_message_not_the_exception_text(server: LoopServer) -> None:
    error = end_of(server, request("default.buggy"))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INTERNAL,
        "admission failed: internal error in the control plane (see its log)",
    )


@pytest.mark.parametrize(
    "requests", [[b"\xff\xff\xff\xff"], [request("default.web"), b"\x0a\xff"]], ids=["first_request", "after_admission"]
)
def test_bytes_that_are_not_a_discovery_request_are_invalid_argument(server: LoopServer, requests: list[bytes]) -> None:
    error = end_of(server, *requests)
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed request: not a DiscoveryRequest protobuf message",
    )
