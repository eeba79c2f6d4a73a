"""Span receivers for the tracing tests: a Zipkin collector (v2 JSON at /api/v2/spans) and a
Datadog agent (msgpack at /v0.4/traces), each an aiohttp server on 127.0.0.1 in its own thread
that keeps every span it receives.

    with ZipkinReceiver() as zipkin:
        ... point a MeshTrace Zipkin backend at zipkin.url ...
        wait_until(lambda: zipkin.spans(), what="Zipkin spans")
"""

from __future__ import annotations

import asyncio
import json
import threading
from types import TracebackType
from typing import Any, Self

import msgpack
from aiohttp import web

from tests.e2e.harness import free_port

__all__ = ["DatadogAgent", "ZipkinReceiver"]


class _Receiver:
    """An aiohttp application on 127.0.0.1:<free port>, served from a private event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self._spans: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request, for a failing test's message."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        asyncio.run_coroutine_threadsafe(self._start(self._runner), self._loop).result(10)
        return self

    async def _start(self, runner: web.AppRunner) -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _keep(self, method: str, path: str, spans: list[dict[str, Any]]) -> None:
        with self._lock:
            self.requests.append((method, path))
            self._spans.extend(spans)

    def spans(self) -> list[dict[str, Any]]:
        """Every span received so far, in arrival order."""
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
            self.requests.clear()


class ZipkinReceiver(_Receiver):
    """A Zipkin collector: `url` is what a MeshTrace Zipkin backend names."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v2/spans"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v2/spans", self._post)

    async def _post(self, request: web.Request) -> web.Response:
        spans = json.loads(await request.read())
        self._keep(request.method, request.path, [s for s in spans if isinstance(s, dict)])
        return web.Response(status=202)


class DatadogAgent(_Receiver):
    """The trace intake of a Datadog agent: `url` is what a MeshTrace Datadog backend names.
    Spans keep the agent's field names (trace_id, span_id, parent_id, service, name,
    resource, meta); other agent endpoints answer with an empty JSON object."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/v0.4/traces", self._traces)
        app.router.add_route("*", "/{tail:.*}", self._other)

    async def _traces(self, request: web.Request) -> web.Response:
        traces = msgpack.unpackb(await request.read(), raw=False, strict_map_key=False)
        self._keep(request.method, request.path, [span for trace in traces for span in trace])
        return web.json_response({"rate_by_service": {}})

    async def _other(self, request: web.Request) -> web.Response:
        await request.read()
        self._keep(request.method, request.path, [])
        return web.json_response({})
