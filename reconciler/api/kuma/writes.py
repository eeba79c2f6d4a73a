"""Writes on Kuma's resource paths: refused. The mesh lives in git; the answer says where to
commit instead (the repository and branch this control plane follows), as a 405 in Kuma's
error shape with `Allow: GET, HEAD`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from reconciler.api.backend import ApiBackend
from reconciler.api.kuma.errors import kuma_error
from reconciler.api.server import Route

__all__ = ["WRITE_METHODS", "write_refusal", "refusing_routes"]

WRITE_METHODS = ("PUT", "POST", "PATCH", "DELETE")
ALLOW = "GET, HEAD"


def write_refusal(cp: ApiBackend) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def refuse(request: web.Request) -> web.StreamResponse:
        detail = (
            f"{request.method} {request.path}: this mesh is managed in git, the HTTP API is read-only. "
            f"Commit the change to branch {cp.branch} of {cp.repository} (`git commit` and `git push`); "
            f"the control plane applies it when it sees the commit"
        )
        return kuma_error(405, "Method not allowed", detail, headers={"Allow": ALLOW})

    return refuse


def refusing_routes(cp: ApiBackend, paths: list[str]) -> list[Route]:
    refuse = write_refusal(cp)
    return [Route(method, path, refuse) for path in paths for method in WRITE_METHODS]
