"""A TCP server for tests that keeps every line it is sent: a Logstash stand-in for the
MeshAccessLog Tcp backend (tests/e2e/observability/test_access_log.py)."""

from __future__ import annotations

import socket
import threading

__all__ = ["LineReceiver"]


class LineReceiver:
    """A TCP server on 127.0.0.1 keeping every line it is sent (a Logstash stand-in)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.lines: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as stream:
            for raw in stream:
                with self._lock:
                    self.lines.append(raw.decode().rstrip("\n"))

    def received(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def close(self) -> None:
        self.server.close()
