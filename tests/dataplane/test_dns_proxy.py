"""The sidecar's DNS proxy answering real queries (dnspython's client, UDP and TCP) on
127.0.0.1: mesh names from its records, everything else from a test upstream nameserver on
127.0.0.1, SERVFAIL when that upstream is down; and its records loaded from a `/dns` document
served over a real Unix socket with an ETag, as Envoy's dynamic-config listener serves it."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from reconciler.dataplane.dns_proxy import DnsProxy, DynamicRecords, Records, records_from_document, upstream_from_resolv_conf
from reconciler.dataplane.dynconf import SOCKET
from tests.e2e.harness import free_port

TIMEOUT = 3.0


class _Loop:
    """An asyncio loop in a thread, for servers the synchronous test queries."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


def _upstream_records() -> Records:
    return Records({"upstream.example.": ("192.0.2.7",)}, {"upstream.example.": ()}, 30)


class Servers:
    def __init__(self, loop: _Loop) -> None:
        self.loop = loop
        self.records = Records(
            {"backend.mesh.": ("240.0.0.1",), "dual.svc.mesh.": ("240.0.0.2", "240.0.0.3")},
            {"backend.mesh.": (), "dual.svc.mesh.": ("fd00:fd00::2",)},
            30,
        )
        # The upstream: another DnsProxy with its own records and no upstream of its own, so
        # every other name is SERVFAIL there; it is a real nameserver on 127.0.0.1 all the same.
        self.upstream = DnsProxy(_upstream_records, upstream=None, port=free_port())
        loop.run(self.upstream.start())
        self.proxy = DnsProxy(lambda: self.records, upstream=("127.0.0.1", self.upstream.port), port=free_port())
        loop.run(self.proxy.start())

    def close(self) -> None:
        self.loop.run(self.proxy.close())
        self.loop.run(self.upstream.close())


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    loop = _Loop()
    s = Servers(loop)
    try:
        yield s
    finally:
        s.close()
        loop.stop()


def udp(servers: Servers, name: str, rdtype: str = "A", port: int | None = None) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port or servers.proxy.port, timeout=TIMEOUT)


def tcp(servers: Servers, name: str, rdtype: str = "A") -> dns.message.Message:
    return dns.query.tcp(dns.message.make_query(name, rdtype), "127.0.0.1", port=servers.proxy.port, timeout=TIMEOUT)


def addresses(response: dns.message.Message) -> list[str]:
    return sorted(rdata.to_text() for rrset in response.answer for rdata in rrset)


@pytest.mark.parametrize("query", [udp, tcp], ids=["udp", "tcp"])
def test_mesh_names_get_authoritative_answers_with_their_vips(servers: Servers, query: Callable[..., dns.message.Message]) -> None:
    response = query(servers, "backend.mesh")
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    assert addresses(response) == ["240.0.0.1"]
    assert response.answer[0].ttl == 30
    assert addresses(query(servers, "DUAL.svc.mesh.")) == ["240.0.0.2", "240.0.0.3"]  # names are case-insensitive
    assert addresses(query(servers, "dual.svc.mesh", "AAAA")) == ["fd00:fd00::2"]


def test_aaaa_of_a_mesh_name_without_ipv6_is_noerror_and_empty(servers: Servers) -> None:
    response = udp(servers, "backend.mesh", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    assert response.answer == []


@pytest.mark.parametrize("query", [udp, tcp], ids=["udp", "tcp"])
def test_other_names_are_forwarded_to_the_upstream(servers: Servers, query: Callable[..., dns.message.Message]) -> None:
    response = query(servers, "upstream.example")
    assert addresses(response) == ["192.0.2.7"]
    # What the upstream says is passed on as it is, failures included.
    assert query(servers, "nowhere.example").rcode() == dns.rcode.SERVFAIL


def test_servfail_when_the_upstream_is_down(servers: Servers) -> None:
    down = DnsProxy(lambda: servers.records, upstream=("127.0.0.1", free_port()), port=free_port(), upstream_timeout=1.0)
    servers.loop.run(down.start())
    try:
        started = time.monotonic()
        response = udp(servers, "upstream.example", port=down.port)
        assert response.rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - started < TIMEOUT
        # Mesh names need no upstream.
        assert addresses(udp(servers, "backend.mesh", port=down.port)) == ["240.0.0.1"]
    finally:
        servers.loop.run(down.close())


def test_new_records_are_answered_at_once(servers: Servers) -> None:
    before = servers.records
    servers.records = records_from_document({"records": [{"name": "fresh.mesh", "ips": ["240.0.0.9", "not-an-ip"]}], "ttl": 5})
    try:
        response = udp(servers, "fresh.mesh")
        assert addresses(response) == ["240.0.0.9"] and response.answer[0].ttl == 5
        # backend.mesh is gone from the records: now the upstream decides (it does not know it).
        assert udp(servers, "backend.mesh").rcode() == dns.rcode.SERVFAIL
    finally:
        servers.records = before


def test_garbage_gets_no_answer_and_the_proxy_keeps_serving(servers: Servers) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(b"\x01\x02garbage", ("127.0.0.1", servers.proxy.port))
        with pytest.raises(TimeoutError):
            s.recv(512)
    assert addresses(udp(servers, "backend.mesh")) == ["240.0.0.1"]


def test_upstream_is_the_first_nameserver_of_resolv_conf(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search example\n# nameserver 10.9.9.9\nnameserver fd00::53\nnameserver 10.0.0.53\n")
    assert upstream_from_resolv_conf(str(resolv)) == ("fd00::53", 53)
    resolv.write_text("search example\n")
    assert upstream_from_resolv_conf(str(resolv)) is None


class _DnsDocument(http.server.BaseHTTPRequestHandler):
    """Envoy's dynamic-config listener, as far as `/dns` goes: the document with an ETag, 304
    when the client already has it."""

    document: dict[str, Any] = {}
    requests: list[str | None] = []

    def do_GET(self) -> None:
        body = json.dumps(type(self).document).encode()
        etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
        type(self).requests.append(self.headers.get("If-None-Match"))
        if self.path != "/dns":
            self.send_response(404)
            self.end_headers()
        elif self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Etag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


class _UnixHttp(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> Any:
        conn, _ = super().get_request()
        return conn, ("local", 0)


def test_records_come_from_the_dns_document_polled_with_its_etag(tmp_path: Path) -> None:
    _DnsDocument.document = {"records": [{"name": "backend.mesh", "ips": ["240.0.0.1", "fd00::1"]}], "ttl": 60}
    _DnsDocument.requests = []
    records = DynamicRecords(tmp_path)
    records.poll()
    assert not records().knows("backend.mesh.")  # no listener yet: nothing known, nothing fails
    server = _UnixHttp(str(tmp_path / SOCKET), _DnsDocument)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        records.poll()
        assert records().ipv4["backend.mesh."] == ("240.0.0.1",) and records().ipv6["backend.mesh."] == ("fd00::1",)
        records.poll()  # unchanged: a 304, the records stay
        assert _DnsDocument.requests[-1] is not None and records().knows("backend.mesh.")
        _DnsDocument.document = {"records": [{"name": "other.mesh", "ips": ["240.0.0.5"]}], "ttl": 60}
        records.poll()
        assert records().knows("other.mesh.") and not records().knows("backend.mesh.")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)
    # The listener gone for a moment (Envoy replacing it): the names stay answerable.
    (tmp_path / SOCKET).unlink()
    records.poll()
    assert records().knows("other.mesh.")
