"""The GUI's page handlers: each reads what it shows through `ApiBackend` and renders one template.

Pages only read. The actions (pin, resume, reconcile now) are the admin API's own calls, made by
gui.js with the admin token the user pasted; the GUI has no write path of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from aiohttp import web

from reconciler.api.backend import ApiBackend
from reconciler.api.gui import views
from reconciler.api.gui.render import render_page, static_file
from reconciler.api.gui.rules_view import dataplane_rules
from reconciler.api.revision import revision_problem
from reconciler.api.server import json_response

__all__ = ["Pages", "HISTORY_LIMIT"]

HISTORY_LIMIT = 50
_NOSNIFF = {"X-Content-Type-Options": "nosniff"}


class Pages:
    def __init__(self, cp: ApiBackend) -> None:
        self.cp = cp

    def _page(self, template: str, nav: str, status: int = 200, **context: Any) -> web.Response:
        return render_page(
            template, status, nav=nav, hdr=views.header(self.cp.store), branch=self.cp.branch, live_version=self.live_version(), **context
        )

    def not_found(self, nav: str, message: str) -> web.Response:
        return self._page("error.html", nav, 404, title="Not found", message=message)

    async def home(self, _: web.Request) -> web.Response:
        store = self.cp.store
        return self._page(
            "home.html",
            "home",
            counts=views.counts(store),
            last_attempt=store.last_attempt.to_json(self.cp.branch) if store.last_attempt else None,
            repository=self.cp.repository,
            not_ready=self.cp.not_ready(),
        )

    async def meshes(self, _: web.Request) -> web.Response:
        return self._page("meshes.html", "meshes", meshes=views.mesh_rows(self.cp.store))

    async def mesh(self, request: web.Request) -> web.Response:
        name = request.match_info["mesh"]
        row = next((m for m in views.mesh_rows(self.cp.store) if m["name"] == name), None)
        if row is None:
            return self.not_found("meshes", f"no mesh {name} is served")
        model = self.cp.store.applied.model if self.cp.store.applied else None
        return self._page(
            "mesh.html",
            "meshes",
            mesh=row,
            dataplanes=[r for r in views.dataplane_rows(self.cp.store) if r.mesh == name],
            services=views.service_rows(model, name),
            policies=await asyncio.to_thread(views.policy_rows, model, name),
        )

    async def dataplanes(self, _: web.Request) -> web.Response:
        return self._page("dataplanes.html", "dataplanes", dataplanes=views.dataplane_rows(self.cp.store))

    async def dataplane(self, request: web.Request) -> web.Response:
        mesh, name = request.match_info["mesh"], request.match_info["name"]
        row = next((r for r in views.dataplane_rows(self.cp.store) if (r.mesh, r.name) == (mesh, name)), None)
        if row is None:
            return self.not_found("dataplanes", f"no dataplane {name} in mesh {mesh}")
        applied = self.cp.store.applied
        # Rendering the proxy's view takes a while in a big mesh: off the loop that serves xDS.
        rules = await asyncio.to_thread(dataplane_rules, applied.model, mesh, name, self.cp.compact_outbounds) if applied else None
        shape = applied.shapes.get(f"{mesh}.{name}") if applied else None
        return self._page("dataplane.html", "dataplanes", dp=row, rules=rules, shape=shape)

    async def services(self, _: web.Request) -> web.Response:
        applied = self.cp.store.applied
        return self._page("services.html", "services", services=views.service_rows(applied.model if applied else None))

    async def policies(self, _: web.Request) -> web.Response:
        applied = self.cp.store.applied
        policies = await asyncio.to_thread(views.policy_rows, applied.model if applied else None)
        return self._page("policies.html", "policies", policies=policies)

    async def history(self, _: web.Request) -> web.Response:
        doc = await self.cp.branch_history(HISTORY_LIMIT)
        return self._page("history.html", "history", history=doc)

    async def commit(self, request: web.Request) -> web.Response:
        revision = request.match_info["revision"]
        problem = revision_problem(revision)
        if problem is not None:
            return self._page("error.html", "history", 400, title="Bad revision", message=problem)
        doc = await self.cp.commit_diff(revision)
        if doc is None:
            return self.not_found("history", f"no commit {revision} in the repository")
        return self._page("diff.html", "history", diff=doc)

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        return static_file(name) or self.not_found("", f"no file {name}")

    async def missing(self, request: web.Request) -> web.Response:
        return self.not_found("", f"no page {request.path}")

    def live_version(self) -> str:
        """A fingerprint of what the pages show: it moves when a proxy connects, ACKs or NACKs,
        a commit lands or is rejected, serving is pinned or resumed."""
        store = self.cp.store
        latest = store.history[0] if store.history else None
        state = {
            "status": store.status(),
            "attempts": [
                len(store.history),
                latest.revision if latest else "",
                latest.outcome if latest else "",
                latest.at if latest else 0,
            ],
            "dataplanes": sorted(store.applied.model.dataplanes) if store.applied else [],
        }
        return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]

    async def live(self, _: web.Request) -> web.Response:
        """`/gui/live`: gui.js polls it and re-reads a page's live parts only when it moves."""
        return json_response({"version": self.live_version()}, headers={"Cache-Control": "no-store", **_NOSNIFF})
