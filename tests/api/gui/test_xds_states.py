"""The dataplane pages' xDS column from a real Store behind a stand-in backend (no control plane):
a proxy's NACK shows with its message, and a proxy that names itself with markup (a node id is
the proxy's own word) is shown as text."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from reconciler.api.admin_token import load_or_create
from reconciler.api.backend import ApiBackend
from reconciler.api.gui import gui_routes
from reconciler.api.gui.views import dataplane_rows
from reconciler.api.metrics import Metrics
from reconciler.api.server import ApiServer
from reconciler.store import Attempt, Store
from reconciler.xds.cache import ConfigCache
from reconciler.xds_types import CLUSTER, LISTENER

HOSTILE_NODE = 'default.<img src=x onerror="alert(1)">'
NACK = "Proto constraint validation failed: <b>cluster</b> \"c\" & 'd'"


class StandIn:
    def __init__(self) -> None:
        self.store = Store("main")
        self.cache = ConfigCache()
        self.metrics = Metrics(self.store)
        self.branch = "main"
        self.webhook_secret: bytes | None = None
        self.repository = "https://git.example/mesh.git"
        self.compact_outbounds: int | None = None

    def not_ready(self) -> list[str]:
        return ["no commit applied yet"]

    async def branch_history(self, limit: int) -> dict[str, Any]:
        return {"branch": self.branch, "head": "", "servedRevision": "", "pinnedRevision": "", "commits": []}

    async def commit_diff(self, revision: str) -> dict[str, Any] | None:
        return None

    async def reconcile(self, reason: str, *, fetch: bool = True) -> Attempt:
        return Attempt("a" * 40, "failed", "nothing to read")

    async def rollback(self, rev: str, *, force: bool = False, requested_by: str = "") -> tuple[int, dict[str, Any]]:
        return 409, {"error": "refusing"}

    async def resume(self) -> dict[str, Any]:
        return {}

    def wake(self, *, fetch: bool = False, trigger: str = "watch") -> None:
        pass


def proxy_with_a_nack(store: Store) -> None:
    proxy = store.proxy(HOSTILE_NODE)
    proxy.connected = True
    cds = proxy.type(CLUSTER)
    cds.sent_version, cds.sent_revision, cds.acked_version = "v2", "b" * 40, "v1"
    cds.nacked_revision, cds.nack_message, cds.nacks = "b" * 40, NACK, 3
    lds = proxy.type(LISTENER)
    lds.sent_version = lds.acked_version = "v7"


def test_a_nack_and_its_message_are_shown_per_type() -> None:
    store = Store("main")
    proxy_with_a_nack(store)
    [row] = dataplane_rows(store)
    assert (row.mesh, row.name, row.source, row.online) == ("default", '<img src=x onerror="alert(1)">', "unknown", True)
    assert [(t.type, t.state, t.sent, t.acked, t.nack, t.nacks) for t in row.xds] == [
        ("CDS", "NACK", "v2", "v1", NACK, 3),
        ("LDS", "ACK", "v7", "v7", "", 0),
    ]


def test_the_pages_show_the_nack_as_text(tmp_path: Path) -> None:
    backend = StandIn()
    proxy_with_a_nack(backend.store)
    typed: ApiBackend = backend

    async def pages() -> tuple[str, int, str]:
        server = ApiServer(gui_routes(typed), load_or_create(tmp_path / "state"))
        port = await server.start("127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                async with http.get(f"http://127.0.0.1:{port}/gui/dataplanes") as r:
                    listing = await r.text()
                # The detail page of that proxy: its name, URL-quoted, finds it.
                async with http.get(f"http://127.0.0.1:{port}/gui/dataplanes/default/%3Cimg%20src=x%20onerror=%22alert(1)%22%3E") as r:
                    return listing, r.status, await r.text()
        finally:
            await server.stop()

    listing, status, detail = asyncio.run(pages())
    escaped_nack = "Proto constraint validation failed: &lt;b&gt;cluster&lt;/b&gt; &#34;c&#34; &amp; &#39;d&#39;"
    assert f"CDS NACK: {escaped_nack}" in listing
    assert "<img src=x" not in listing and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in listing
    assert status == 200
    assert "<img src=x" not in detail and escaped_nack in detail and "(3 NACKs)" in detail
