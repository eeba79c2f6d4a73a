"""The HTTP API on port 5681: what the server serves and to whom, history, and the few actions
(reconcile now, rollback, resume, the git webhook).

Handlers only translate between HTTP and the ControlPlane; the work happens there. The API is
not authenticated (see docs/security.md): it never returns key material, and the webhook proves
itself with its shared secret.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from reconciler.api.http import Request, Response
from reconciler.source.remote import verify_webhook, webhook_ref
from reconciler.xds.resources import SHORT_NAMES

if TYPE_CHECKING:
    from reconciler.controlplane import ControlPlane

__all__ = ["routes", "prefix_routes"]

log = logging.getLogger("reconciler.controlplane")

Handler = Any


def routes(cp: ControlPlane) -> dict[tuple[str, str], Handler]:
    """Exact-path routes: (method, path) → handler."""

    async def status(_: Request) -> Response:
        return Response.json(cp.store.status())

    async def dataplanes(_: Request) -> Response:
        return Response.json(cp.store.dataplanes())

    async def metrics(_: Request) -> Response:
        return Response.text(cp.metrics.render(), content_type="text/plain; version=0.0.4")

    async def reconcile(_: Request) -> Response:
        attempt = await cp.reconcile("api")
        if attempt.outcome == "unchanged" and cp.store.last_attempt is not None:
            attempt = cp.store.last_attempt
        return Response.json(attempt.to_json(cp.settings.branch) | {"status": cp.store.status()})

    async def history(request: Request) -> Response:
        try:
            limit = max(1, min(1000, int(request.arg("limit", "20") or 20)))
        except ValueError:
            return Response.error(400, "limit must be a number")
        return Response.json(await cp.branch_history(limit))

    async def rollback(request: Request) -> Response:
        try:
            body = request.json() or {}
            rev = str(body["revision"])
        except (ValueError, KeyError, TypeError):
            return Response.error(400, 'POST a JSON body {"revision": "<rev>", "force": false}')
        code, doc = await cp.rollback(rev, force=bool(body.get("force")))
        return Response.json(doc, code)

    async def resume(_: Request) -> Response:
        return Response.json(await cp.resume())

    async def git_hook(request: Request) -> Response:
        return _webhook(cp, request)

    return {
        ("GET", "/status"): status,
        ("GET", "/dataplanes"): dataplanes,
        ("GET", "/metrics"): metrics,
        ("GET", "/history"): history,
        ("POST", "/reconcile"): reconcile,
        ("POST", "/rollback"): rollback,
        ("POST", "/resume"): resume,
        ("POST", "/hooks/git"): git_hook,
    }


def prefix_routes(cp: ControlPlane) -> dict[tuple[str, str], Handler]:
    """Routes by path prefix: `/config/<mesh>/<name>` and `/dataplanes/<mesh>/<name>`."""

    async def config(request: Request) -> Response:
        node_id = request.path.removeprefix("/config/").replace("/", ".", 1)
        cfg = cp.cache.fetch(node_id)
        if cfg is None:
            return Response.error(404, f"no config for {node_id}")
        return Response.json({
            "node": node_id,
            "revision": cfg.revision,
            # Never the proxies' keys: the API is not authenticated like the xDS port.
            "resources": {SHORT_NAMES.get(t, t): [r.public_dict() for r in m.values()] for t, m in cfg.resources.by_type.items() if m},
        })

    async def dataplane(request: Request) -> Response:
        node_id = request.path.removeprefix("/dataplanes/").replace("/", ".", 1)
        for dp in cp.store.dataplanes():
            if dp["node"] == node_id:
                return Response.json(dp)
        return Response.error(404, f"no dataplane {node_id}")

    return {("GET", "/config/"): config, ("GET", "/dataplanes/"): dataplane}


def _webhook(cp: ControlPlane, request: Request) -> Response:
    """`POST /hooks/git`: a GitHub or GitLab push proven by the shared secret → fetch now."""
    secret = cp.webhook_secret
    if secret is None:
        return Response.error(404, "no webhook configured: start serve with --webhook-secret-file")
    source = verify_webhook(request.headers, request.body, secret)
    if source is None:
        cp.metrics.inc("reconciler_webhooks_total", result="unauthorized")
        log.warning("webhook refused: wrong or missing secret", extra={"github": "x-hub-signature-256" in request.headers, "gitlab": "x-gitlab-token" in request.headers})
        return Response.error(401, "wrong or missing webhook secret (X-Hub-Signature-256 or X-Gitlab-Token)")
    event = request.headers.get("x-github-event") or request.headers.get("x-gitlab-event") or ""
    if event == "ping":
        cp.metrics.inc("reconciler_webhooks_total", result="ping")
        return Response.json({"accepted": False, "event": event, "message": "pong"})
    ref = webhook_ref(request.body)
    tracked = f"refs/heads/{cp.settings.branch}"
    if ref is not None and ref != tracked:
        cp.metrics.inc("reconciler_webhooks_total", result="ignored")
        return Response.json({"accepted": False, "event": event, "ref": ref, "message": f"not the tracked branch {tracked}"})
    cp.metrics.inc("reconciler_webhooks_total", result="accepted")
    log.info("webhook: fetching now", extra={"source": source, "event": event or "-", "ref": ref or "-"})
    cp.wake(fetch=True, trigger="webhook")
    return Response.json({"accepted": True, "source": source, "event": event, "ref": ref or tracked}, 202)
