"""Helpers for the HTTP API tests: requests with full control over method, headers and bytes,
the admin token a control plane wrote into its state directory, and a served repository."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess

__all__ = ["Reply", "request", "raw_exchange", "admin_token", "token_id", "served_control_plane", "TOKEN_ENV"]

TOKEN_ENV = "RECONCILER_ADMIN_TOKEN"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    reused_connection: bool = False

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    base: str,
    method: str,
    path: str,
    body: bytes | Mapping[str, Any] | None = None,
    *,
    token: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One request over a fresh connection; `token` is sent as `Authorization: Bearer`."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if isinstance(body, Mapping) else body
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def raw_exchange(host: str, port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` as it is and read what the server answers until it closes or goes quiet."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    s.settimeout(0.5)  # the head is in; take what body follows, then stop
        except TimeoutError:
            pass
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def admin_token(state_dir: Path) -> str:
    """The admin token `serve` wrote into its state directory."""
    return (state_dir / "admin-token").read_text().strip()


def token_id(token: str) -> str:
    """The token's id as documented (docs/gitops.md): the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@contextlib.contextmanager
def served_control_plane(
    root: Path, files: Mapping[str, str | None], *, extra: tuple[str, ...] = ()
) -> Iterator[tuple[ConfigRemote, ControlPlaneProcess, str]]:
    """A bare repository with one pushed commit and `reconciler serve` on it: (remote, cp, commit)."""
    remote = ConfigRemote(root)
    first = remote.push(files, "first")
    cp = ControlPlaneProcess(remote.bare, root / "state", extra=extra)
    cp.start()
    try:
        yield remote, cp, first
    finally:
        cp.stop()
