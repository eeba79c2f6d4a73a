"""The Tcp access-log backend's streamer, as kuma-dp's (app/kuma-dp/pkg/dataplane/accesslogs).

Envoy cannot write access logs to a TCP address, so a MeshAccessLog `Tcp` backend makes Envoy's
file access logger write to a named pipe (FIFO) in the work directory,
`kuma-al-<name>-<mesh>.sock` (policies/meshaccesslog/formats.py), one JSON object a line:
`{"address": "host:port", "message": <line or object>}`. This service creates that FIFO before
Envoy starts, reads it, and sends each message to its address over TCP: a string message as
it is (Kuma's plain lines end with a newline), an object as compact JSON and a newline. Lines
in the older `address;message` form (Kuma's TrafficLog) are accepted too.

As kuma-dp, it keeps one connection per address, connects on the first message for it (5 s
timeout), and drops a message it cannot deliver (no retry, so a wrong address cannot make the
pipe back up); a failed send closes the connection and the next message reconnects.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import stat
import threading
from pathlib import Path

from reconciler.dataplane.sidecar_context import SidecarContext
from reconciler.policies.meshaccesslog.formats import socket_name

__all__ = ["AccessLogStreamer", "parse_line"]

CONNECT_TIMEOUT = 5.0
POLL_INTERVAL = 0.2
"""How often the reader looks up from the pipe to see whether it was asked to stop."""
_log = logging.getLogger("reconciler.dataplane.accesslog")


def parse_line(line: bytes) -> tuple[str, bytes] | None:
    """(address, bytes to send) of one line of the pipe; None when it is neither form."""
    try:
        wrapped = json.loads(line)
    except ValueError:
        address, sep, message = line.partition(b";")
        return (address.decode(errors="replace"), message) if sep else None
    if not isinstance(wrapped, dict):
        return None
    embedded = wrapped.get("message")
    if isinstance(embedded, str):
        data = embedded.encode()
    else:
        data = json.dumps(embedded, separators=(",", ":")).encode() + b"\n"
    return str(wrapped.get("address", "")), data


class AccessLogStreamer:
    """A SidecarService: the FIFO reader and its TCP senders."""

    name = "access-log-streamer"

    def __init__(self) -> None:
        self.path: Path | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._senders: dict[str, socket.socket] = {}

    def start(self, ctx: SidecarContext) -> None:
        path = ctx.work_dir / socket_name(ctx.name, ctx.mesh)
        try:
            if path.exists() or path.is_symlink():
                path.unlink()
            os.mkfifo(path, 0o600)
            # Read and write: opening never blocks waiting for Envoy, and the pipe never reports
            # end-of-file when Envoy closes or reopens it (`/reopen_logs`, a restart).
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        except OSError as e:
            _log.warning("access-log streamer: cannot create %s: %s; Tcp access logs will not be sent", path, e)
            return
        self.path = path
        self._thread = threading.Thread(target=self._run, args=(fd,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * POLL_INTERVAL + 1)
        for sender in self._senders.values():
            sender.close()
        self._senders.clear()
        if self.path is not None and self.path.exists() and stat.S_ISFIFO(self.path.lstat().st_mode):
            self.path.unlink(missing_ok=True)

    def _run(self, fd: int) -> None:
        pending = b""
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([fd], [], [], POLL_INTERVAL)
                if not ready:
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._forward(line)
        finally:
            os.close(fd)

    def _forward(self, line: bytes) -> None:
        parsed = parse_line(line)
        if parsed is None:
            _log.warning("access-log streamer: a line is neither JSON nor 'address;message'; dropped")
            return
        address, data = parsed
        sender = self._senders.get(address)
        if sender is None:
            host, _, port = address.rpartition(":")
            try:
                sender = socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT)
            except (OSError, ValueError) as e:
                _log.warning("access-log streamer: cannot connect to %s (%s); log dropped", address, e)
                return
            self._senders[address] = sender
        try:
            sender.sendall(data)
        except OSError as e:
            _log.warning("access-log streamer: sending to %s failed (%s); log dropped, reconnecting on the next", address, e)
            sender.close()
            del self._senders[address]
