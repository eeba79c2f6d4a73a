"""Moving serving away from the branch head, and back: `rollback` pins a commit
(`refs/reconciler/pin`), `resume` deletes the pin, and rollback-on-nack serves the last revision
every proxy accepted again when proxies reject the applied one.

Each is carried out on the `Reconciler` (reconciler/controlplane/loop.py); whether a NACK rolls
back is `decide.nack_decision`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from reconciler.ca.authority import CaError
from reconciler.controlplane import decide
from reconciler.controlplane.attempts import shapes
from reconciler.controlplane.loop import READ_ERRORS, Reconciler
from reconciler.errors import Problem
from reconciler.reconcile import InternalError
from reconciler.source.git import GitError, SourceError
from reconciler.source.pins import PinConflict
from reconciler.source.refs import APPLIED_REF, PIN_REF
from reconciler.store import Applied, Attempt, revision_string

__all__ = ["pin", "resume", "on_nack"]

log = logging.getLogger("reconciler.controlplane")


async def pin(r: Reconciler, rev: str, *, force: bool = False, requested_by: str = "") -> tuple[int, dict[str, Any]]:
    """Pin serving to `rev`: (HTTP status, body). Refused (nothing written) when `rev` is
    unknown (400), not on the branch's history without `force`, or invalid (409).

    `requested_by` (the admin token's id) goes into the pin's reflog; a forced pin of a
    commit off the branch is also logged as a warning with it."""
    assert r.engine is not None
    branch = r.branch
    if r.mirror.remote:
        try:
            await asyncio.to_thread(r.mirror.fetch)
        except (GitError, OSError) as e:
            log.warning("fetch before rollback failed", extra={"error": r.mirror.redact(str(e))})
    try:
        sha = str(r.engine.source.resolve(rev).id)
    except SourceError as e:
        return 400, {"error": r.mirror.redact(str(e))}
    head = r.mirror.head()
    on_branch = head is not None and (sha == head or r.mirror.descends_from(head, sha))
    if not on_branch and not force:
        return 409, {
            "error": f"{sha[:12]} is not on the history of {branch}: refusing to pin it (rollback --force pins it anyway)",
            "revision": sha,
        }
    async with r.lock:
        try:
            rejection, _ = await r.judge(sha, time.perf_counter(), "rollback")
        except READ_ERRORS as e:
            return 409, {"error": f"refusing to pin {sha[:12]}: cannot read it: {r.mirror.redact(str(e))}", "revision": sha}
    if rejection is not None:
        return 409, {
            "error": f"refusing to pin {sha[:12]}: {rejection.message}",
            "revision": sha,
            "errors": [p.to_json() for p in rejection.errors],
        }
    served = r.store.applied.revision[:12] if r.store.applied else "nothing"
    who = f"api, token {requested_by}" if requested_by else "api"
    if not on_branch:
        who = f"forced off {branch}, {who}"
        log.warning(
            "forced rollback to a commit off the branch",
            extra={"revision": sha[:12], "branch": branch, "token_id": requested_by or "-"},
        )
    message = f"reconciler rollback: pin {sha[:12]} (serving {served}, {who})"
    r.pinning = sha
    try:
        if r.mirror.remote:
            refused = await _share(r, sha, message)
            if refused is not None:
                return refused
        else:
            await asyncio.to_thread(r.mirror.write_ref, PIN_REF, sha, message)
        attempt = await r.reconcile("rollback", fetch=False)
    finally:
        r.pinning = None
    if attempt.outcome == "unchanged" and r.store.applied is not None and r.store.applied.revision == sha:
        last = r.store.last_attempt
        if served != sha[:12] and last is not None and last.revision == sha and last.outcome == "applied":
            # The serve loop saw the pin first and applied it: that is this rollback's result.
            attempt = last
        else:
            attempt = Attempt(sha, "applied", f"Applied revision: {revision_string(branch, sha)} (already served)", trigger="rollback")
    return 200, {"pinnedRevision": revision_string(branch, sha), **attempt.to_json(branch), "status": r.store.status()}


async def _share(r: Reconciler, new: str | None, message: str) -> tuple[int, dict[str, Any]] | None:
    """Write the pin (None: delete it) on the remote, if it still is the one this replica
    saw at its last fetch; a refusal as (HTTP status, body), nothing changed anywhere."""
    seen = r.mirror.pin()
    where = r.mirror.redact(r.mirror.location)
    try:
        await asyncio.to_thread(r.mirror.share_pin, new, seen, message)
    except PinConflict as e:
        now = revision_string(r.branch, e.current) if e.current else None
        log.warning("pin changed on the remote meanwhile", extra={"expected": (seen or "none")[:12], "now": (e.current or "none")[:12]})
        return 409, {
            "error": f"the pin on {where} changed meanwhile (through another replica?): it is now {now or 'absent'}, "
            f"not {revision_string(r.branch, seen) if seen else 'absent'}; nothing changed (check, then try again)",
            "remotePin": now,
        }
    except (SourceError, GitError, OSError) as e:
        return 502, {"error": f"cannot write the pin to {where}: {r.mirror.redact(str(e))}"}
    return None


async def resume(r: Reconciler) -> dict[str, Any]:
    """Delete the pin and follow the branch again; for a remote, the pin on the remote
    (409 when it changed since this replica's last fetch, 502 when the remote is unreachable)."""
    if r.mirror.remote:
        try:
            await asyncio.to_thread(r.mirror.fetch)
        except (GitError, OSError) as e:
            log.warning("fetch before resume failed", extra={"error": r.mirror.redact(str(e))})
    pinned = r.mirror.pin()
    if pinned is not None:
        if r.mirror.remote:
            refused = await _share(r, None, f"reconciler resume: unpin {pinned[:12]} (api)")
            if refused is not None:
                status, body = refused
                raise web.HTTPConflict(text=body["error"]) if status == 409 else web.HTTPBadGateway(text=body["error"])
        else:
            await asyncio.to_thread(r.mirror.delete_pin)
        log.info("resumed", extra={"unpinned": pinned[:12]})
    attempt = await r.reconcile("resume", fetch=False)
    if attempt.outcome == "unchanged" and r.store.last_attempt is not None:
        attempt = r.store.last_attempt
    return {
        "unpinned": revision_string(r.branch, pinned),
        **attempt.to_json(r.branch),
        "status": r.store.status(),
    }


def _nack_action(r: Reconciler, revision: str, *, rolling_back: bool) -> decide.NackAction:
    applied = r.store.applied
    return decide.nack_decision(
        revision,
        rollback_on_nack=r.settings.rollback_on_nack,
        applied=applied.revision if applied else None,
        accepted=r.acks.accepted,
        refused=r.refused,
        rolling_back=rolling_back,
    )


def on_nack(r: Reconciler, revision: str) -> None:
    """A proxy rejected `revision`: with rollback-on-nack, start serving the way back."""
    action = _nack_action(r, revision, rolling_back=r.store.rolling_back is not None)
    if isinstance(action, decide.NoWayBack):
        log.warning(
            "proxies rejected the applied revision; no revision every proxy accepted to return to", extra={"revision": revision[:12]}
        )
    elif isinstance(action, decide.RollBack):
        # Said at once, so a client polling the status waits for the rollback, not a bare NACK.
        r.store.rolling_back = (action.bad, action.good)
        asyncio.ensure_future(_rollback_after_nack(r, action.bad))


async def _rollback_after_nack(r: Reconciler, bad: str) -> None:
    """Proxies rejected `bad`: serve the last revision every proxy accepted, and refuse `bad`."""
    try:
        await _roll_back(r, bad)
    finally:
        r.store.rolling_back = None


async def _roll_back(r: Reconciler, bad: str) -> None:
    assert r.engine is not None
    branch = r.branch
    async with r.lock:
        # Asked again under the lock: a reconcile may have moved serving since the NACK.
        action = _nack_action(r, bad, rolling_back=False)
        if not isinstance(action, decide.RollBack):
            return
        good = action.good
        nacks = [(p.node_id, t, " ".join(msg.split())) for p in r.store.proxies.values() for t, msg in p.rejected(bad)]
        try:
            evaluation = await asyncio.to_thread(r.engine.evaluate, good)
            build = await asyncio.to_thread(r.engine.build, evaluation.snapshot, r.store.registrations())
        except (SourceError, GitError, CaError, InternalError, KeyError, ValueError, OSError) as e:
            log.error("rollback after NACK failed", extra={"revision": good[:12], "error": str(e)})
            return
        r.publish(build, good)
        r.store.apply(Applied(good, evaluation.snapshot, build.model, time.time(), shapes(build)))
        first = f"; first: {nacks[0][0]} {nacks[0][1]}: {nacks[0][2]}" if nacks else ""
        back = Attempt(
            good,
            "applied",
            f"Applied revision: {revision_string(branch, good)} (rolled back: proxies rejected {revision_string(branch, bad)})",
            trigger="rollback-on-nack",
        )
        refused = Attempt(
            bad,
            "rejected-by-proxies",
            f"proxies rejected {revision_string(branch, bad)}, rolled back to {revision_string(branch, good)}: "
            f"{len(nacks)} NACK{'s' if len(nacks) != 1 else ''}{first}",
            tuple(Problem(None, None, None, "", f"{node} rejected {kind}: {msg}") for node, kind, msg in nacks),
            cause="ProxiesRejected",
            trigger="rollback-on-nack",
            to=good,
        )
        r.refused[bad] = refused
        r.record(back)
        r.record(refused)
        await asyncio.to_thread(
            r.mirror.write_ref, APPLIED_REF, good, f"reconciler: applied {good[:12]} (rollback-on-nack: proxies rejected {bad[:12]})"
        )
        r.metrics.reconciles.labels(outcome="rejected-by-proxies").inc()
        log.warning("rolled back: proxies rejected the revision", extra={"rejected": bad[:12], "serving": good[:12], "nacks": len(nacks)})
        r.tell(back)
