"""A TCP echo server for tests that send raw TCP through Envoy."""

from __future__ import annotations

import socket
import threading

__all__ = ["EchoServer"]


class EchoServer:
    """Echoes what each connection sends, after `prefix`, until the peer closes it."""

    def __init__(self, prefix: bytes = b"") -> None:
        self.prefix = prefix
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(self.prefix + data)
            except OSError:
                return

    def close(self) -> None:
        self.server.close()
