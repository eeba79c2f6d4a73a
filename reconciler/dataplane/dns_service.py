"""The DNS proxy (dns_proxy.py) as a service of run-dataplane (services.py): a process of its
own beside Envoy, so that it can run as the proxy's uid: the redirect leaves that uid's DNS
queries alone, which is how the proxy's forwarded queries reach the real nameserver instead of
coming back to it.

The process is forked from run-dataplane rather than started as a new Python: the proxy's uid
may not be allowed to run this interpreter (one under root's home), while a fork has it loaded
already. Everything the proxy needs is imported, and one query answered, before the child drops
to that uid.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import time
from pathlib import Path

from reconciler.dataplane.dns_proxy import DnsProxy, DynamicRecords, Records, serve, upstream_from_resolv_conf
from reconciler.dataplane.sidecar_context import SidecarContext

__all__ = ["DnsProxyService"]

log = logging.getLogger(__name__)

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def _warm_up() -> None:
    """Load what answering and forwarding import lazily, while files are still readable."""
    import dns.asyncquery
    import dns.message

    proxy = DnsProxy(lambda: Records({"warm.up.": ("192.0.2.1",)}, {"warm.up.": ("2001:db8::1",)}), upstream=None)
    for name, rdtype in (("warm.up", "A"), ("warm.up", "AAAA"), ("other.up", "A")):
        wire = asyncio.run(proxy.handle(dns.message.make_query(name, rdtype).to_wire(), tcp=False))
        assert wire is not None
        dns.message.from_wire(wire)
    assert dns.asyncquery.udp is not None


def _child(work_dir: Path, port: int, run_as: tuple[int, int] | None, ready: int) -> int:
    _warm_up()
    if run_as:
        os.setgroups([])
        os.setgid(run_as[1])
        os.setuid(run_as[0])
    records = DynamicRecords(work_dir)
    records.start()

    def started(proxy: DnsProxy) -> None:
        os.write(ready, f"listening {proxy.port}\n".encode())
        os.close(ready)

    try:
        asyncio.run(serve(DnsProxy(records, upstream=upstream_from_resolv_conf(), port=port), on_ready=started, also_ipv6=True))
    finally:
        records.stop()
    return 0


class DnsProxyService:
    name = "dns-proxy"

    def __init__(self, port: int, run_as: tuple[int, int] | None = None) -> None:
        self.port = port
        self.run_as = run_as
        self.pid: int | None = None

    def start(self, ctx: SidecarContext) -> None:
        """Fork the proxy and wait (bounded) until it listens: applications resolve through it
        as soon as the redirect is in place."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child process
            os.close(read_end)
            code = 1
            try:
                code = _child(ctx.work_dir, self.port, self.run_as, write_end)
            except BaseException as e:
                log.error("DNS proxy failed", extra={"error": str(e) or type(e).__name__})
            finally:
                os._exit(code)
        os.close(write_end)
        self.pid = pid
        try:
            ready, _, _ = select.select([read_end], [], [], READY_TIMEOUT)
            line = os.read(read_end, 100).decode() if ready else ""
        finally:
            os.close(read_end)
        if not line.startswith("listening"):
            self.stop()
            raise RuntimeError(f"the DNS proxy did not start on 127.0.0.1:{self.port}")
        log.info("DNS proxy started", extra={"port": self.port, "pid": pid})

    def stop(self) -> None:
        pid, self.pid = self.pid, None
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
