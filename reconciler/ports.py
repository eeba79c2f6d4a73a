"""Whether a server can listen on a port: one check for `serve` (its xDS and API ports) and
the demo (every port it binds), asked before anything starts so a taken port is named in one
line instead of surfacing as a library's bind error half way through a start."""

from __future__ import annotations

import errno
import socket

__all__ = ["listen_error"]


def listen_error(host: str, port: int) -> str | None:
    """Why a server cannot listen on `host`:`port` ("Address already in use"), or None.

    gRPC's own bind failure says only "Failed to bind" (and logs a line of its own), so the
    port is tried first with a plain socket, with SO_REUSEADDR as gRPC sets it. Port 0
    (any free port) is always usable.
    """
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"cannot resolve {host}: {e.strerror}"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as e:
                hint = " (another `reconciler serve` or another program listens on it)" if e.errno == errno.EADDRINUSE else ""
                return f"{e.strerror or e}{hint}"
    return None
