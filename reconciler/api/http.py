"""A small HTTP/1.1 server on asyncio streams: one request per connection, JSON or text out.

The API serves a handful of endpoints to operators, CLIs and Prometheus; a framework would
be a heavy dependency for that. Requests are bounded (headers 64 KiB, body 1 MiB) and time
out, so a slow or hostile client cannot pin the control plane.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Request", "Response", "HttpServer", "Handler"]

log = logging.getLogger(__name__)

MAX_HEADER = 64 * 1024
MAX_BODY = 1024 * 1024
TIMEOUT = 10.0

_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass(frozen=True, slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        return cls(status, (json.dumps(value, indent=2, default=str) + "\n").encode())

    @classmethod
    def text(cls, value: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
        return cls(status, value.encode(), content_type)

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        return cls.json({"error": message}, status)


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    def __init__(self, routes: Mapping[tuple[str, str], Handler], prefix_routes: Mapping[tuple[str, str], Handler] | None = None) -> None:
        self.routes = routes
        self.prefix_routes = prefix_routes or {}
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int, ssl: Any = None) -> int:
        self._server = await asyncio.start_server(self._handle, host, port, ssl=ssl, limit=MAX_HEADER)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _route(self, method: str, path: str) -> Handler | None:
        handler = self.routes.get((method, path))
        if handler is not None:
            return handler
        for (m, prefix), h in self.prefix_routes.items():
            if m == method and path.startswith(prefix):
                return h
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(self._read(reader), TIMEOUT)
            if isinstance(request, Response):
                response = request
            else:
                handler = self._route(request.method, request.path)
                if handler is None:
                    known = any(p == request.path for _, p in self.routes)
                    response = Response.error(405 if known else 404, f"no {request.method} {request.path}")
                else:
                    try:
                        response = await handler(request)
                    except Exception:
                        log.exception("api handler failed", extra={"path": request.path})
                        response = Response.error(500, "internal error; see the control plane log")
            await self._write(writer, response)
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _read(self, reader: asyncio.StreamReader) -> Request | Response:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return Response.error(413, "request headers too large")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return Response.error(400, "malformed request line")
        method, target, _ = parts
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY:
            return Response.error(413, "request body too large")
        body = await reader.readexactly(length) if length else b""
        url = urlsplit(target)
        return Request(method.upper(), url.path.rstrip("/") or "/", parse_qs(url.query), headers, body)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: Response) -> None:
        head = [
            f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            "Connection: close",
        ]
        head += [f"{k}: {v}" for k, v in response.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
        await writer.drain()
