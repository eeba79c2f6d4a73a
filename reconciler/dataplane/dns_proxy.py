"""The sidecar's DNS proxy, as kuma-dp's embedded one (Kuma 2.14, app/kuma-dp/pkg/dataplane/
dnsproxy): the transparent proxy redirects the workload's DNS queries to it (UDP port 15053 by
default); it answers the mesh's names with the VIPs the control plane allocated and forwards
every other question to the first nameserver of /etc/resolv.conf.

- A name with records answers authoritatively: its A records for A; for AAAA, its IPv6
  addresses, or NOERROR with no answer when it has none (the name exists, not as IPv6).
- Anything else (unknown names, other types) is forwarded as it came; SERVFAIL when the
  upstream does not answer in time.
- The records come from a callable (`RecordSource`), swapped atomically: in the sidecar it is
  the `/dns` document (`{"records": [{"name", "ips"}], "ttl": N}`) that the control plane serves
  through Envoy's dynamic-config listener, polled with its ETag (dynconf.fetch_dynamic_config);
  tests hand it records directly.

It listens on UDP and TCP (kuma-dp listens on UDP only; TCP lets a client retry a truncated
answer). Messages are built and parsed by dnspython.

Run beside Envoy by run-dataplane (dns_service.DnsProxyService) as a process of its own, so that
it can run as the proxy's uid, whose traffic the redirect leaves alone; alone, it runs as
`python -m reconciler.dataplane.dns_proxy --work-dir DIR [--port 15053] [--upstream HOST:PORT]`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = [
    "DEFAULT_PORT",
    "Records",
    "RecordSource",
    "records_from_document",
    "DnsProxy",
    "DynamicRecords",
    "upstream_from_resolv_conf",
    "serve",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 15053
DNS_PATH = "/dns"
UPSTREAM_TIMEOUT = 2.0
"""Seconds to wait for the upstream nameserver before answering SERVFAIL."""
TCP_IDLE_TIMEOUT = 10.0
POLL_INTERVAL = 1.0
"""Seconds between two polls of the `/dns` document (a 304 costs one request over a Unix socket)."""


@dataclass(frozen=True, slots=True)
class Records:
    """Names (lowercase, with the final dot) → IPv4 and IPv6 addresses, and the answers' TTL."""

    ipv4: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ipv6: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ttl: int = 60

    def knows(self, name: str) -> bool:
        return name in self.ipv4


RecordSource = Callable[[], Records]


def _key(name: str) -> str:
    return name.lower().rstrip(".") + "."


def records_from_document(document: Mapping[str, Any]) -> Records:
    """Records from the `/dns` document; an address that does not parse is left out (Kuma logs and skips it)."""
    ipv4: dict[str, list[str]] = {}
    ipv6: dict[str, list[str]] = {}
    for record in document.get("records") or ():
        if not isinstance(record, Mapping) or not record.get("name"):
            continue
        name = _key(str(record["name"]))
        ipv4.setdefault(name, [])
        ipv6.setdefault(name, [])
        for text in record.get("ips") or ():
            try:
                address = ipaddress.ip_address(str(text))
            except ValueError:
                log.warning("DNS record with an invalid address skipped", extra={"record": name, "ip": text})
                continue
            (ipv6 if address.version == 6 else ipv4)[name].append(str(address))
    ttl = document.get("ttl")
    return Records(
        {n: tuple(a) for n, a in ipv4.items()},
        {n: tuple(a) for n, a in ipv6.items()},
        int(ttl) if isinstance(ttl, int) and ttl >= 0 else 60,
    )


def upstream_from_resolv_conf(path: str = "/etc/resolv.conf") -> tuple[str, int] | None:
    """The first nameserver of `path` (either family), port 53; None when there is none."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                return (str(ipaddress.ip_address(words[1].split("%", 1)[0])), 53)
            except ValueError:
                continue
    return None


class DnsProxy:
    """The resolver: `answer` decides locally, `handle` forwards what it cannot answer."""

    def __init__(
        self,
        records: RecordSource,
        *,
        upstream: tuple[str, int] | None,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        upstream_timeout: float = UPSTREAM_TIMEOUT,
    ) -> None:
        self._records = records
        self.upstream = upstream
        self.host = host
        self.port = port
        self._timeout = upstream_timeout
        self._transport: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None

    def on_host(self, host: str) -> DnsProxy:
        """The same resolver (records, upstream, port) listening on another address."""
        return DnsProxy(self._records, upstream=self.upstream, host=host, port=self.port, upstream_timeout=self._timeout)

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        """The authoritative answer for a mesh name, or None to forward the query."""
        if len(query.question) == 0:
            return None
        question = query.question[0]
        records = self._records()
        name = _key(question.name.to_text())
        if question.rdclass != dns.rdataclass.IN or question.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA) or not records.knows(name):
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        addresses = (records.ipv4 if question.rdtype == dns.rdatatype.A else records.ipv6).get(name, ())
        if addresses:
            response.answer.append(
                dns.rrset.from_text_list(question.name, records.ttl, dns.rdataclass.IN, question.rdtype, list(addresses))
            )
        return response

    async def handle(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The response to one query message; None for bytes that are not a DNS query."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        local = self.answer(query)
        if local is not None:
            return local.to_wire()
        if self.upstream is not None:
            host, port = self.upstream
            try:
                if tcp:
                    forwarded = await dns.asyncquery.tcp(query, host, port=port, timeout=self._timeout)
                else:
                    forwarded = await dns.asyncquery.udp(query, host, port=port, timeout=self._timeout, ignore_unexpected=True)
                return forwarded.to_wire()
            except (dns.exception.DNSException, OSError) as e:
                log.info(
                    "upstream DNS failed; answering SERVFAIL", extra={"upstream": f"{host}:{port}", "error": str(e) or type(e).__name__}
                )
        failed = dns.message.make_response(query)
        failed.set_rcode(dns.rcode.SERVFAIL)
        return failed.to_wire()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        proxy = self

        class _Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                loop.create_task(self._reply(data, addr))

            async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
                response = await proxy.handle(data, tcp=False)
                if response is not None and proxy._transport is not None:
                    proxy._transport.sendto(response, addr)

        transport, _ = await loop.create_datagram_endpoint(_Udp, local_addr=(self.host, self.port))
        self._transport = transport
        if self.port == 0:
            self.port = transport.get_extra_info("sockname")[1]
        self._server = await asyncio.start_server(self._tcp, self.host, self.port)

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT))[0]
                response = await self.handle(await asyncio.wait_for(reader.readexactly(size), TCP_IDLE_TIMEOUT), tcp=True)
                if response is None:
                    break
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


class DynamicRecords:
    """The `/dns` document of the Envoy running in `work_dir`, polled in a daemon thread; until
    the first document comes, no name is known (every query is forwarded); when a poll fails,
    the last records stay."""

    def __init__(self, work_dir: Path, interval: float = POLL_INTERVAL) -> None:
        self._work_dir = work_dir
        self._interval = interval
        self._records = Records()
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dns-records", daemon=True)

    def __call__(self) -> Records:
        return self._records

    def poll(self) -> None:
        from reconciler.dataplane.dynconf import fetch_dynamic_config

        document, etag = fetch_dynamic_config(self._work_dir, DNS_PATH, self._etag)
        if document is not None:
            self._records = records_from_document(document)
            log.info("DNS records loaded", extra={"names": len(self._records.ipv4)})
        # Nothing fetched (Envoy replacing its listener, a restart): the last records stay, and
        # the next fetch asks without an ETag so that it gets the whole document.
        self._etag = etag

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self._interval)


async def serve(proxy: DnsProxy, on_ready: Callable[[DnsProxy], None] | None = None, *, also_ipv6: bool = False) -> None:
    """Run `proxy` until SIGTERM or SIGINT; `on_ready` is called once it listens. `also_ipv6`:
    the same proxy on [::1] too, where ip6tables redirects IPv6 queries (when this namespace
    has IPv6 loopback at all)."""
    await proxy.start()
    proxies = [proxy]
    if also_ipv6:
        twin = proxy.on_host("::1")
        try:
            await twin.start()
            proxies.append(twin)
        except OSError as e:
            log.info("DNS proxy not listening on [::1]", extra={"error": str(e)})
    if on_ready is not None:
        on_ready(proxy)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for p in proxies:
        await p.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.dataplane.dns_proxy", description="The sidecar's DNS proxy.")
    parser.add_argument("--work-dir", required=True, help="Envoy's work directory (its dynamic-config socket serves /dns).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--upstream", help="host:port of the nameserver for other names (default: the first of /etc/resolv.conf).")
    args = parser.parse_args(argv)
    upstream = upstream_from_resolv_conf()
    if args.upstream:
        host, _, port = args.upstream.rpartition(":")
        upstream = (host.strip("[]"), int(port))
    records = DynamicRecords(Path(args.work_dir))
    records.start()
    try:
        asyncio.run(
            serve(
                DnsProxy(records, upstream=upstream, host=args.host, port=args.port),
                on_ready=lambda p: print(f"dns proxy listening on {p.host}:{p.port} (udp, tcp)", flush=True),
            )
        )
    finally:
        records.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
