"""MeshAccessLog's pieces on their own: placeholders, collector endpoints, and the Tcp backend's
streamer with a real FIFO and a real TCP receiver (the golden cases beside this file cover the
generated listeners and clusters)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from reconciler.dataplane.accesslog_streamer import AccessLogStreamer, parse_line
from reconciler.dataplane.services import SidecarContext, sidecar_services
from reconciler.policies.core.plugin import HookContext, ProxyFacts
from reconciler.policies.meshaccesslog.backends import cluster_name, otel_endpoint
from reconciler.policies.meshaccesslog.formats import interpolate, kuma_values, socket_name
from tests.e2e.harness import wait_until

PROXY = ProxyFacts("default", "web-1", "web", "10.0.0.1")
ALL = "%KUMA_SOURCE_ADDRESS% %KUMA_SOURCE_ADDRESS_WITHOUT_PORT% %KUMA_SOURCE_SERVICE% %KUMA_DESTINATION_SERVICE% %KUMA_MESH% %KUMA_TRAFFIC_DIRECTION% %KUMA_ZONE%|%START_TIME%"


@pytest.mark.parametrize(
    ("ctx", "expected"),
    [
        (
            HookContext("inbound", "web", "", "http", "default", proxy=PROXY),
            "10.0.0.1:0 10.0.0.1 unknown web default INBOUND |%START_TIME%",
        ),
        (
            HookContext("outbound", "backend", "", "http", "default", proxy=PROXY),
            "10.0.0.1:0 10.0.0.1 web backend default OUTBOUND |%START_TIME%",
        ),
        (
            HookContext(
                "inbound", "edge", "", "http", "default", gateway=True, proxy=ProxyFacts("default", "edge-1", "edge", "fd00::1", True)
            ),
            "[fd00::1]:0 fd00::1 edge * default OUTBOUND |%START_TIME%",
        ),
    ],
    ids=["inbound", "outbound", "gateway-ipv6"],
)
def test_placeholders_resolve_as_kuma_where_the_log_is_written(ctx: HookContext, expected: str) -> None:
    assert interpolate(ALL, kuma_values(ctx)) == expected


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("otel:4318", ("otel", 4318)),
        ("otel", ("otel", 4317)),
        ("2001:db8::1", ("2001:db8::1", 4317)),
        ("[2001:db8::1]:55", ("2001:db8::1", 55)),
    ],
)
def test_collector_endpoints_default_to_port_4317(endpoint: str, expected: tuple[str, int]) -> None:
    assert otel_endpoint({"endpoint": endpoint}) == expected


def test_collector_cluster_names_are_kumas_unified_names() -> None:
    assert cluster_name(("127.0.0.1", 4317)) == "system_meshaccesslog_127-0-0-1-4317"
    assert cluster_name(("otel-collector", 4317)) == "system_meshaccesslog_otel-collector-4317"


def test_socket_name_is_relative_and_short() -> None:
    assert socket_name("web-1", "default") == "kuma-al-web-1-default.sock"
    assert len(socket_name("x" * 200, "default")) == 98 + len(".sock")


def test_streamer_lines_in_both_of_kumas_forms() -> None:
    assert parse_line(b'{"address":"127.0.0.1:9","message":"a line\\n"}') == ("127.0.0.1:9", b"a line\n")
    assert parse_line(b'{"address":"h:9","message":{"k":"v","n":1}}') == ("h:9", b'{"k":"v","n":1}\n')
    assert parse_line(b"h:9;legacy line") == ("h:9", b"legacy line")
    assert parse_line(b"neither") is None


def test_run_dataplane_starts_the_streamer() -> None:
    assert [s.name for s in sidecar_services()].count("access-log-streamer") == 1


def test_streamer_forwards_what_envoy_writes_to_the_fifo(tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(4096):
                received.append(data)

    threading.Thread(target=serve, daemon=True).start()
    streamer = AccessLogStreamer()
    streamer.start(SidecarContext(tmp_path, "127.0.0.1:9901", "default", "web-1"))
    fifo = tmp_path / "kuma-al-web-1-default.sock"
    try:
        # As Envoy's file logger: open for appending, write whole lines, close, reopen.
        for text in (
            f'{{"address":"127.0.0.1:{port}","message":"first\\n"}}\n',
            f'{{"address":"127.0.0.1:{port}","message":{{"path":"/x"}}}}\n{{"address":"127.0.0.1:1","message":"dropped\\n"}}\n',
        ):
            fd = os.open(fifo, os.O_WRONLY | os.O_APPEND)
            os.write(fd, text.encode())
            os.close(fd)
        wait_until(lambda: b"".join(received) == b'first\n{"path":"/x"}\n', 5, what="both messages at the receiver")
    finally:
        streamer.stop()
        server.close()
    assert not fifo.exists()
