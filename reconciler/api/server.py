"""The HTTP API server: aiohttp on the control plane's event loop.

Routes are values (`Route`): a method, an aiohttp path pattern (`/config/{mesh}/{name}`), a
handler, and whether the call changes what is served (`admin`: it then needs the admin token).
An API added later registers its own list of routes with the same server.

aiohttp parses HTTP (keep-alive, HEAD for every GET route, chunked bodies) and refuses what is
malformed with a 400 before a handler runs: a negative or non-numeric `Content-Length`, two
that disagree, a request line that is not HTTP. Limits: a request line or header of 8 KiB,
100 headers, a body of 1 MiB read within 10 s, a connection idle (or stuck in its headers) for
15 s is closed. Errors are JSON
`{"error": "..."}` like every answer, and a broken request is one line in the log, not a
traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from reconciler.api.admin_token import TOKEN_ENV, AdminToken

__all__ = ["Route", "ApiServer", "json_response", "error_response", "read_body", "read_json", "BadRequest", "ADMIN_KEY", "MAX_BODY"]

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_LINE = 8190
MAX_HEADERS = 100
KEEPALIVE_TIMEOUT = 15.0
BODY_TIMEOUT = 10.0

ADMIN_KEY = web.RequestKey("reconciler.admin_token_id", str)
"""On a request that passed the admin check: the id of the token it presented (safe to log)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    """An aiohttp path pattern: `/status`, `/config/{mesh}/{name}`."""
    handler: Handler
    admin: bool = False
    """It changes what is served: refused (401) without the admin token."""


class BadRequest(Exception):
    """The request's body or parameters cannot be used: a 400 with this message."""


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(value, indent=2, default=str) + "\n"
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": message}, status, headers)


async def read_body(request: web.Request) -> bytes:
    """The body: 413 past MAX_BODY, 408 when it takes longer than BODY_TIMEOUT to arrive (a
    client trickling it holds no handler for long)."""
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(text=f"the request body did not arrive within {BODY_TIMEOUT:g} s") from None


async def read_json(request: web.Request) -> Any:
    """The JSON body (None when empty); BadRequest when it is not JSON (see read_body)."""
    raw = await read_body(request)
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        raise BadRequest("the body is not JSON") from None


class _QuietProtocolLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, with a request it cannot parse logged as one line instead of a
    traceback: a scanner or a broken client must not flood the log."""

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self._refused(exc_info)
        else:
            self.logger.error(msg, *args, exc_info=exc_info, **kwargs)

    def debug(self, msg: object, *args: Any, exc_info: Any = None, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):  # not HTTP at all (TLS, a port scan)
            self._refused(exc_info)
        else:
            self.logger.debug(msg, *args, exc_info=exc_info, **kwargs)

    def _refused(self, error: HttpProcessingError) -> None:
        self.logger.info(
            "api request refused: malformed http", extra={"status": error.code, "reason": " ".join(str(error.message).split())[:200]}
        )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as JSON; a handler's bug as a 500 with the traceback only in the log."""
    try:
        return await handler(request)
    except BadRequest as e:
        return error_response(400, str(e))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status == 404:
            return error_response(404, f"no {request.method} {request.path}")
        if e.status == 405:
            return error_response(405, f"no {request.method} {request.path}", {"Allow": e.headers.get("Allow", "")})
        if e.status == 413:
            return error_response(413, f"the request body is larger than {MAX_BODY // (1024 * 1024)} MiB")
        return error_response(e.status, e.text or e.reason)
    except Exception:
        log.exception("api handler failed", extra={"method": request.method, "path": request.path})
        return error_response(500, "internal error; see the control plane log")


class ApiServer:
    """The API's routes on one listening socket of the running event loop."""

    def __init__(self, routes: Iterable[Route], admin_token: AdminToken) -> None:
        self.admin_token = admin_token
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[_errors])
        for route in routes:
            handler = self._admin_only(route.handler) if route.admin else route.handler
            if route.method == "GET":
                self.app.router.add_get(route.path, handler)  # HEAD too
            else:
                self.app.router.add_route(route.method, route.path, handler)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Listen on host:port (0: any free port); returns the port."""
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            logger=_QuietProtocolLog(logging.getLogger(__name__), {}),
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _admin_only(self, handler: Handler) -> Handler:
        token = self.admin_token

        async def guarded(request: web.Request) -> web.StreamResponse:
            if not token.accepts(request.headers.get("Authorization")):
                log.warning(
                    "api call refused: wrong or missing admin token",
                    extra={"method": request.method, "path": request.path, "peer": request.remote or "-"},
                )
                return error_response(
                    401,
                    f"{request.method} {request.path} changes what is served and needs the admin token: send it as "
                    f"`Authorization: Bearer <token>`. It is in {token.path} on the server; the CLI reads it with "
                    f"--state-dir (the server's), --admin-token-file FILE or ${TOKEN_ENV}",
                    {"WWW-Authenticate": 'Bearer realm="reconciler"'},
                )
            request[ADMIN_KEY] = token.id
            log.info(
                "api call", extra={"method": request.method, "path": request.path, "token_id": token.id, "peer": request.remote or "-"}
            )
            return await handler(request)

        return guarded
