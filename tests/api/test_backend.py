"""The API serves whatever satisfies `ApiBackend`: here a stand-in with a real store, cache and
metrics, on a real aiohttp server on a free loopback port, without a control plane or a repository."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from reconciler.api.admin_token import load_or_create
from reconciler.api.backend import ApiBackend
from reconciler.api.metrics import Metrics
from reconciler.api.routes import routes
from reconciler.api.server import ApiServer
from reconciler.store import Attempt, Store
from reconciler.xds.cache import ConfigCache


class StandIn:
    def __init__(self) -> None:
        self.store = Store("main")
        self.cache = ConfigCache()
        self.metrics = Metrics(self.store)
        self.branch = "main"
        self.webhook_secret: bytes | None = None
        self.repository = "https://git.example/mesh.git"
        self.compact_outbounds: int | None = None
        self.asked: list[str] = []

    def not_ready(self) -> list[str]:
        return ["no commit applied yet"]

    async def branch_history(self, limit: int) -> dict[str, Any]:
        return {"branch": self.branch, "limit": limit, "commits": []}

    async def commit_diff(self, revision: str) -> dict[str, Any] | None:
        return None

    async def reconcile(self, reason: str, *, fetch: bool = True) -> Attempt:
        self.asked.append(f"reconcile {reason}")
        return Attempt("a" * 40, "failed", "nothing to read")

    async def rollback(self, rev: str, *, force: bool = False, requested_by: str = "") -> tuple[int, dict[str, Any]]:
        self.asked.append(f"rollback {rev}")
        return 409, {"error": "refusing"}

    async def resume(self) -> dict[str, Any]:
        self.asked.append("resume")
        return {"unpinned": None}

    def wake(self, *, fetch: bool = False, trigger: str = "watch") -> None:
        self.asked.append(f"wake {trigger}")


def test_routes_need_only_the_backend_protocol(tmp_path: Path) -> None:
    backend = StandIn()
    typed: ApiBackend = backend  # mypy: the stand-in satisfies the protocol
    token = load_or_create(tmp_path / "state")

    async def exercise() -> None:
        server = ApiServer(routes(typed), token)
        port = await server.start("127.0.0.1", 0)
        base = f"http://127.0.0.1:{port}"
        try:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async with http.get(f"{base}/readyz") as r:
                    assert r.status == 503
                    assert (await r.json())["reasons"] == ["no commit applied yet"]
                async with http.get(f"{base}/history?limit=5") as r:
                    assert (await r.json())["limit"] == 5
                async with http.post(f"{base}/resume") as r:
                    assert r.status == 401  # the admin token is the server's business, not the backend's
                auth = {"Authorization": f"Bearer {token.value}"}
                async with http.post(f"{base}/resume", headers=auth) as r:
                    assert r.status == 200
                async with http.post(f"{base}/rollback", json={"revision": "main~1"}, headers=auth) as r:
                    assert r.status == 409
                async with http.post(f"{base}/hooks/git", data=b"{}") as r:
                    assert r.status == 404  # no webhook secret
        finally:
            await server.stop()

    asyncio.run(exercise())
    assert backend.asked == ["resume", "rollback main~1"]
