"""The in-memory store: what is served, what was tried, and how each proxy took it.

Status follows Flux's vocabulary: `lastAppliedRevision` is the revision being served,
`lastAttemptedRevision` the last commit tried (both `<branch>@sha1:<hash>`); `Ready` is
always present, `Stalled` appears (with the same reason) when the last attempt was rejected,
and `Reconciling` while a reconcile is running. While serving is pinned by a rollback, a
`Pinned` condition (True, reason `RollbackPinned`) and `pinnedRevision` say to which commit.

`Ready` is never True while the control plane's own state keeps proxies out (a signing key
file it cannot use, keys replaced by `serve --rotate-missing-keys`): each `lockouts` source
names such a state, and Ready is False with its reason. Only the control plane's own state
counts, never what proxies send, so a stranger with a bad token cannot change Ready.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.errors import Problem
from reconciler.mesh.health import HealthReport
from reconciler.mesh.model import MeshModel
from reconciler.mesh.shape import ShapeChoice
from reconciler.model import Resource, Snapshot
from reconciler.types import ResourceKey
from reconciler.xds_types import SHORT_NAMES

__all__ = ["Applied", "Attempt", "ProxyStatus", "TypeStatus", "Store", "Outcome", "Lockout", "ResourceTime"]

Outcome = Literal["applied", "rejected", "unchanged", "failed", "held", "rolled-back", "rejected-by-proxies"]
"""`held`: valid, not applied because serving is pinned; `rolled-back`: an event on a revision
that was served until a pin moved serving to `to`; `rejected-by-proxies`: applied, NACKed by
proxies, and serving went back to `to` (serve --rollback-on-nack)."""

_FAILURES = ("rejected", "failed", "rejected-by-proxies")
_EVENTS = ("rolled-back",)


@dataclass(frozen=True, slots=True)
class Applied:
    """The configuration being served."""

    revision: str
    snapshot: Snapshot
    model: MeshModel
    applied_at: float
    shapes: Mapping[str, ShapeChoice] = field(default_factory=dict)
    """Each proxy's outbound shape (node id → choice), for the API and run-dataplane."""


@dataclass(frozen=True, slots=True)
class Attempt:
    revision: str
    outcome: Outcome
    message: str
    errors: tuple[Problem, ...] = ()
    at: float = field(default_factory=time.time)
    duration: float = 0.0
    cause: str = ""
    """The condition reason when not the outcome's usual one (`VerificationError`, `ProxiesRejected`)."""
    trigger: str = ""
    """What started it: start, resume, watch, api, webhook, rollback, rollback-on-nack."""
    to: str = ""
    """For rolled-back and rejected-by-proxies: the revision serving moved to."""
    phases: Mapping[str, float] = field(default_factory=dict, compare=False)
    """Seconds per reconcile phase it went through (load, validate, build, generate, push)."""
    proxies_changed: int | None = None
    """For an applied commit: how many proxies got new config (the others were not regenerated)."""

    def to_json(self, branch: str) -> dict[str, Any]:
        out = {
            "revision": revision_string(branch, self.revision),
            "outcome": self.outcome,
            "message": self.message,
            "errors": [p.to_json() for p in self.errors],
            "at": _iso(self.at),
            "durationSeconds": round(self.duration, 4),
        }
        if self.trigger:
            out["trigger"] = self.trigger
        if self.to:
            out["to"] = revision_string(branch, self.to)
        if self.phases:
            out["phaseSeconds"] = {phase: round(seconds, 4) for phase, seconds in self.phases.items()}
        if self.proxies_changed is not None:
            out["proxiesChanged"] = self.proxies_changed
        return out


@dataclass(slots=True)
class TypeStatus:
    sent_version: str = ""
    sent_revision: str = ""
    acked_version: str = ""
    acked_revision: str = ""
    nacked_revision: str = ""
    nack_message: str = ""
    nacks: int = 0
    pushes: int = 0
    resumed: int = 0
    """Streams that opened already holding this type's current config: nothing was sent."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sentRevision": self.sent_revision,
            "ackedRevision": self.acked_revision,
            "pushes": self.pushes,
            "resumed": self.resumed,
        }
        if self.nacked_revision:
            out["nack"] = {"revision": self.nacked_revision, "message": self.nack_message, "count": self.nacks}
        return out


@dataclass(slots=True)
class ProxyStatus:
    node_id: str
    connected: bool = False
    streams: int = 0
    mode: str = ""
    connected_at: float = 0.0
    disconnected_at: float = 0.0
    """When its last stream closed (0: never); Kuma's disconnectTime."""
    revision: str = ""
    generation: int = -1
    """The cache generation (and its revision) this proxy's stream has pushed."""
    types: dict[str, TypeStatus] = field(default_factory=dict)

    def type(self, type_url: str) -> TypeStatus:
        status = self.types.get(type_url)
        if status is None:
            status = self.types[type_url] = TypeStatus()
        return status

    def acked_all(self) -> bool:
        """The last response of every type was ACKed (none pending, none NACKed)."""
        return bool(self.types) and all(t.acked_version == t.sent_version for t in self.types.values())

    def synced(self, current_generation: int | None) -> bool:
        """Connected, its stream pushed the node's current config, and the proxy ACKed it all."""
        return self.connected and current_generation == self.generation and self.acked_all()

    def rejected(self, revision: str) -> list[tuple[str, str]]:
        return [(SHORT_NAMES.get(u, u), t.nack_message) for u, t in self.types.items() if t.nacked_revision == revision]

    def to_json(self, current_generation: int | None = None) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "connected": self.connected,
            "mode": self.mode,
            "revision": self.revision,
            "synced": self.synced(current_generation),
            "types": {SHORT_NAMES.get(u, u): t.to_json() for u, t in sorted(self.types.items())},
        }


@dataclass(frozen=True, slots=True)
class Lockout:
    """Why proxies cannot be admitted or served, from the control plane's own state."""

    reason: str
    """PascalCase, as a condition reason: `SigningKeyUnusable`, `KeysRotated`."""
    message: str
    """What is wrong and what to do."""


@dataclass(frozen=True, slots=True)
class ResourceTime:
    """When this control plane first applied a resource and when it last applied a change to it
    (Kuma's `creationTime` and `modificationTime`). Kept in memory: after a restart both start
    at the first commit applied again."""

    created: float
    modified: float
    digest: str


def revision_string(branch: str, sha: str | None) -> str:
    return f"{branch}@sha1:{sha}" if sha else ""


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Store:
    """Mutable by the reconcile loop and the xDS callbacks, in the event loop's thread only."""

    def __init__(self, branch: str, history_size: int = 200, current_generation: Callable[[str], int | None] = lambda node: None) -> None:
        self.branch = branch
        self.current_generation = current_generation
        """The generation of a node's config in the xDS cache (to tell whether a proxy is synced)."""
        self.applied: Applied | None = None
        self.last_attempt: Attempt | None = None
        self.last_failure: Attempt | None = None
        self.history: deque[Attempt] = deque(maxlen=history_size)
        self.reconciling = False
        self.pin: str | None = None
        """The commit `refs/reconciler/pin` names, None when following the branch."""
        self.rolling_back: tuple[str, str] | None = None
        """(rejected, target) while serve --rollback-on-nack takes back a revision proxies NACKed."""
        self.fetch_error: str | None = None
        """The last fetch of a remote failed (transient: retried at the next interval)."""
        self.registered: dict[str, Resource] = {}
        """Dataplanes registered by proxies connected here, by node id."""
        self.peer_registered: dict[str, Resource] = {}
        """Dataplanes registered by proxies connected to other replicas (source/registry.py)."""
        self.health: dict[str, HealthReport] = {}
        """The last health report of each proxy with an HDS stream here (controlplane/health.py)."""
        self.proxies: dict[str, ProxyStatus] = {}
        self.lockouts: list[Callable[[], list[Lockout]]] = []
        """Sources of what keeps proxies out (asked each time conditions are read)."""
        self.times: dict[ResourceKey, ResourceTime] = {}
        """Of every resource applied from git (see `time_of` for registered dataplanes)."""

    # -- reconcile outcomes --------------------------------------------------------------
    def record(self, attempt: Attempt) -> None:
        if attempt.outcome == "unchanged":
            return
        self.history.appendleft(attempt)
        if attempt.outcome in _EVENTS:
            return  # about a revision served before, not an attempt
        self.last_attempt = attempt
        if attempt.outcome in _FAILURES:
            self.last_failure = attempt
        elif attempt.outcome in ("applied", "held"):
            self.last_failure = None

    def recovered(self) -> None:
        """The repository can be read again: forget a `failed` read, back to the last real outcome."""
        if self.last_attempt is None or self.last_attempt.outcome != "failed":
            return
        self.last_attempt = self.last_failure = None
        for a in self.history:
            if a.outcome != "failed" and a.outcome not in _EVENTS:
                self.last_attempt = a
                self.last_failure = a if a.outcome in _FAILURES else None
                return

    def apply(self, applied: Applied) -> None:
        previous = self.applied
        self.applied = applied
        if previous is not None and previous.snapshot is applied.snapshot:
            return  # a rebuild of the same commit changes no resource
        times: dict[ResourceKey, ResourceTime] = {}
        for r in applied.snapshot.resources:
            old = self.times.get(r.key)
            if old is None:
                times[r.key] = ResourceTime(applied.applied_at, applied.applied_at, r.digest)
            elif old.digest != r.digest:
                times[r.key] = ResourceTime(old.created, applied.applied_at, r.digest)
            else:
                times[r.key] = old
        for registered in self.registrations():  # not in git: they keep their own times
            if registered.key not in times and registered.key in self.times:
                times[registered.key] = self.times[registered.key]
        self.times = times

    def registrations(self) -> list[Resource]:
        """Every registered Dataplane the model is built with: this replica's, then the other
        replicas' it does not have itself (the same proxy registers the same Dataplane)."""
        return list({**self.peer_registered, **self.registered}.values())

    def time_of(self, resource: Resource) -> ResourceTime:
        """A git resource's times; a registered dataplane's: when it last (re)registered."""
        known = self.times.get(resource.key)
        if known is not None and known.digest == resource.digest:
            return known
        created = known.created if known is not None else time.time()
        now = time.time() if known is not None else created
        self.times[resource.key] = t = ResourceTime(created, now, resource.digest)
        return t

    # -- proxies -------------------------------------------------------------------------
    def proxy(self, node_id: str) -> ProxyStatus:
        status = self.proxies.get(node_id)
        if status is None:
            status = self.proxies[node_id] = ProxyStatus(node_id)
        return status

    def connected(self) -> list[ProxyStatus]:
        return [p for p in self.proxies.values() if p.connected]

    # -- status (Flux vocabulary) ---------------------------------------------------------
    def conditions(self) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        failure = self.last_failure
        lockouts = [lockout for source in self.lockouts for lockout in source()]
        locked = "".join(f"; {lockout.message}" for lockout in lockouts)
        if failure is not None and self.last_attempt is failure:
            # Stalled and Ready share the failure's reason (Flux); a lockout is added to the message.
            reason = failure.cause or ("ReconciliationFailed" if failure.outcome == "failed" else "ValidationFailed")
            served = f"; serving {revision_string(self.branch, self.applied.revision)}" if self.applied else ""
            out.append({"type": "Ready", "status": "False", "reason": reason, "message": failure.message + served + locked})
            if failure.outcome != "failed":  # terminal for that revision: not retried until the branch moves
                out.append({"type": "Stalled", "status": "True", "reason": reason, "message": failure.message})
        elif lockouts:
            served = f"serving {revision_string(self.branch, self.applied.revision)}, but " if self.applied else ""
            out.append({"type": "Ready", "status": "False", "reason": lockouts[0].reason, "message": served + locked[2:]})
        elif self.applied is not None:
            out.append(
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "ReconciliationSucceeded",
                    "message": f"Applied revision: {revision_string(self.branch, self.applied.revision)}",
                }
            )
        else:
            out.append({"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": "no revision applied yet"})
        if self.rolling_back is not None:
            bad, good = self.rolling_back
            out.append(
                {
                    "type": "Reconciling",
                    "status": "True",
                    "reason": "RollingBack",
                    "message": f"proxies rejected {revision_string(self.branch, bad)}; returning to {revision_string(self.branch, good)}",
                }
            )
        elif self.reconciling:
            out.append({"type": "Reconciling", "status": "True", "reason": "Progressing", "message": "reconciliation in progress"})
        elif self.fetch_error is not None:
            out.append({"type": "Reconciling", "status": "True", "reason": "ProgressingWithRetry", "message": self.fetch_error})
        if self.pin is not None:
            out.append(
                {
                    "type": "Pinned",
                    "status": "True",
                    "reason": "RollbackPinned",
                    "message": f"serving is pinned to {revision_string(self.branch, self.pin)} by refs/reconciler/pin; "
                    f"new commits are validated, not applied (`reconciler resume` follows {self.branch} again)",
                }
            )
        return out

    def status(self) -> dict[str, Any]:
        attempt = self.last_attempt
        return {
            "branch": self.branch,
            "lastAppliedRevision": revision_string(self.branch, self.applied.revision if self.applied else None),
            "lastAttemptedRevision": revision_string(
                self.branch, attempt.revision if attempt else (self.applied.revision if self.applied else None)
            ),
            "pinnedRevision": revision_string(self.branch, self.pin),
            "conditions": self.conditions(),
            "lastFailure": self.last_failure.to_json(self.branch) if self.last_failure else None,
            "lastAttempt": attempt.to_json(self.branch) if attempt else None,
            "resources": len(self.applied.snapshot) if self.applied else 0,
            "proxies": {
                p.node_id: p.to_json(self.current_generation(p.node_id)) | _health_json(self.health.get(p.node_id))
                for p in sorted(self.proxies.values(), key=lambda p: p.node_id)
            },
        }

    def dataplanes(self) -> list[dict[str, Any]]:
        model = self.applied.model if self.applied else None
        out = []
        names: Mapping[str, Any] = model.dataplanes if model else {}
        for node_id in sorted(set(names) | set(self.proxies)):
            dp = names.get(node_id)
            proxy = self.proxies.get(node_id)
            out.append(
                {
                    "node": node_id,
                    "mesh": dp.mesh if dp else node_id.partition(".")[0],
                    "name": dp.name if dp else node_id.partition(".")[2],
                    "source": ("registered" if dp.registered else "git") if dp else "unknown",
                    "connected": bool(proxy and proxy.connected),
                    "adminPort": dp.admin_port if dp else None,
                    "inbounds": [
                        {"address": i.address, "port": i.port, "service": i.service, "protocol": i.protocol, "ready": i.ready}
                        for i in dp.inbounds
                    ]
                    if dp
                    else [],
                    "outbounds": [
                        {"address": o.address, "port": o.port, "service": o.service or (o.backend_ref[1] if o.backend_ref else "")}
                        for o in dp.outbounds
                    ]
                    if dp
                    else [],
                    "outboundShape": _shape_json(self.applied.shapes.get(node_id) if self.applied else None),
                    "synced": bool(proxy and proxy.synced(self.current_generation(node_id))),
                    "xds": proxy.to_json()["types"] if proxy else {},
                }
            )
        return out


def _shape_json(choice: ShapeChoice | None) -> dict[str, str] | None:
    return {"shape": choice.shape, "reason": choice.reason} if choice is not None else None


def _health_json(report: HealthReport | None) -> dict[str, Any]:
    return {"health": report.to_json()} if report is not None else {}
