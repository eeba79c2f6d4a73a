"""The HTTP API on port 5681: what the server serves and to whom, history, health, and the few
actions (reconcile now, rollback, resume, the git webhook).

Handlers only translate between HTTP and the control plane (seen through `ApiBackend`); the
work happens there. Reads are open; the actions that change what is served need the admin token
(`Route.admin`, checked by the server). Nothing here returns key material. The webhook proves itself with its own shared
secret, not the admin token: GitHub and GitLab sign with it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from reconciler.api.backend import ApiBackend
from reconciler.api.revision import revision_problem
from reconciler.api.server import ADMIN_KEY, BadRequest, Route, error_response, json_response, read_body, read_json
from reconciler.source.remote import verify_webhook, webhook_ref
from reconciler.store import revision_string
from reconciler.xds.resources import SHORT_NAMES

__all__ = ["routes"]

log = logging.getLogger("reconciler.controlplane")

_ROLLBACK_USAGE = 'POST a JSON body {"revision": "<commit id or ref name>", "force": false}'


def routes(cp: ApiBackend) -> list[Route]:
    async def status(_: web.Request) -> web.Response:
        return json_response(cp.store.status())

    async def healthz(_: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        reasons = cp.not_ready()
        applied = cp.store.applied
        doc = {
            "ready": not reasons,
            "revision": revision_string(cp.branch, applied.revision if applied else None),
            "reasons": reasons,
        }
        return json_response(doc, 503 if reasons else 200)

    async def dataplanes(_: web.Request) -> web.Response:
        return json_response(cp.store.dataplanes())

    async def dataplane(request: web.Request) -> web.Response:
        node_id = f"{request.match_info['mesh']}.{request.match_info['name']}"
        for dp in cp.store.dataplanes():
            if dp["node"] == node_id:
                return json_response(dp)
        return error_response(404, f"no dataplane {node_id}")

    async def config(request: web.Request) -> web.Response:
        node_id = f"{request.match_info['mesh']}.{request.match_info['name']}"
        cfg = cp.cache.fetch(node_id)
        if cfg is None:
            return error_response(404, f"no config for {node_id}")
        return json_response(
            {
                "node": node_id,
                "revision": cfg.revision,
                # Never the proxies' keys: reads are open, unlike the xDS port.
                "resources": {SHORT_NAMES.get(t, t): [r.public_dict() for r in m.values()] for t, m in cfg.resources.by_type.items() if m},
                # Content hashes: equal on every replica that serves the same commit (docs/operations.md).
                "versions": {SHORT_NAMES.get(t, t): {n: r.version for n, r in m.items()} for t, m in cfg.resources.by_type.items() if m},
            }
        )

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = cp.metrics.exposition(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def history(request: web.Request) -> web.Response:
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "20") or 20)))
        except ValueError:
            return error_response(400, "limit must be a number")
        return json_response(await cp.branch_history(limit))

    async def commit_diff(request: web.Request) -> web.Response:
        revision = request.match_info["revision"]
        problem = revision_problem(revision)
        if problem is not None:
            raise BadRequest(problem)
        doc = await cp.commit_diff(revision)
        if doc is None:
            return error_response(404, f"no commit {revision} in the repository")
        return json_response(doc)

    async def reconcile(_: web.Request) -> web.Response:
        attempt = await cp.reconcile("api")
        if attempt.outcome == "unchanged" and cp.store.last_attempt is not None:
            attempt = cp.store.last_attempt
        return json_response(attempt.to_json(cp.branch) | {"status": cp.store.status()})

    async def rollback(request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("revision"), str):
            raise BadRequest(_ROLLBACK_USAGE)
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise BadRequest(f"force must be true or false; {_ROLLBACK_USAGE}")
        problem = revision_problem(body["revision"])
        if problem is not None:
            raise BadRequest(problem)
        code, doc = await cp.rollback(body["revision"], force=force, requested_by=request[ADMIN_KEY])
        return json_response(doc, code)

    async def resume(_: web.Request) -> web.Response:
        return json_response(await cp.resume())

    async def git_hook(request: web.Request) -> web.Response:
        if cp.webhook_secret is None:  # answered before the body is read
            return error_response(404, "no webhook configured: start serve with --webhook-secret-file")
        return _webhook(cp, cp.webhook_secret, request, await read_body(request))

    return [
        Route("GET", "/status", status),
        Route("GET", "/healthz", healthz),
        Route("GET", "/readyz", readyz),
        Route("GET", "/status/dataplanes", dataplanes),
        Route("GET", "/dataplanes/{mesh}/{name}", dataplane),
        Route("GET", "/config/{mesh}/{name}", config),
        Route("GET", "/metrics", metrics),
        Route("GET", "/history", history),
        Route("GET", "/history/{revision}/diff", commit_diff),
        Route("POST", "/reconcile", reconcile, admin=True),
        Route("POST", "/rollback", rollback, admin=True),
        Route("POST", "/resume", resume, admin=True),
        Route("POST", "/hooks/git", git_hook),
    ]


def _webhook(cp: ApiBackend, secret: bytes, request: web.Request, body: bytes) -> web.Response:
    """`POST /hooks/git`: a GitHub or GitLab push proven by the shared secret → fetch now."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    source = verify_webhook(headers, body, secret)
    if source is None:
        cp.metrics.webhooks.labels(result="unauthorized").inc()
        log.warning(
            "webhook refused: wrong or missing secret",
            extra={"github": "x-hub-signature-256" in headers, "gitlab": "x-gitlab-token" in headers},
        )
        return error_response(401, "wrong or missing webhook secret (X-Hub-Signature-256 or X-Gitlab-Token)")
    event = headers.get("x-github-event") or headers.get("x-gitlab-event") or ""
    if event == "ping":
        cp.metrics.webhooks.labels(result="ping").inc()
        return json_response({"accepted": False, "event": event, "message": "pong"})
    ref = webhook_ref(body)
    tracked = f"refs/heads/{cp.branch}"
    if ref is not None and ref != tracked:
        cp.metrics.webhooks.labels(result="ignored").inc()
        return json_response({"accepted": False, "event": event, "ref": ref, "message": f"not the tracked branch {tracked}"})
    cp.metrics.webhooks.labels(result="accepted").inc()
    log.info("webhook: fetching now", extra={"source": source, "event": event or "-", "ref": ref or "-"})
    cp.wake(fetch=True, trigger="webhook")
    return json_response({"accepted": True, "source": source, "event": event, "ref": ref or tracked}, 202)
