"""The reconcile loop: carries out what reconciler/controlplane/decide.py chooses.

One reconcile at a time (`lock`): read the refs from the mirror, ask `decide` what to do, then
evaluate the commit in a worker thread (`Engine`: read, verify the signature, validate, build),
publish the result to the xDS cache, record the attempt in the store and the history log and
move `refs/reconciler/applied`. A commit that fails leaves the last good one serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from reconciler.api.metrics import Metrics
from reconciler.ca.authority import CaError
from reconciler.controlplane import decide
from reconciler.controlplane.acks import AckTracker
from reconciler.controlplane.attempts import Rejected, attempt_of, internal_error, record_of, shapes
from reconciler.controlplane.judge import judge
from reconciler.controlplane.memory import release_free_memory
from reconciler.controlplane.renewal import RenewalTimer
from reconciler.controlplane.settings import REBUILD_RETRY, ServeSettings
from reconciler.errors import Problem
from reconciler.history import HistoryLog
from reconciler.reconcile import Build, Engine, InternalError
from reconciler.source.git import GitError, SourceError
from reconciler.source.mirror import Mirror
from reconciler.source.refs import APPLIED_REF
from reconciler.source.signatures import SignaturePolicy, SignatureSetupError
from reconciler.store import Applied, Attempt, Store, revision_string
from reconciler.validate.bugs import describe_bug
from reconciler.xds.cache import ConfigCache

__all__ = ["Reconciler", "READ_ERRORS"]

log = logging.getLogger("reconciler.controlplane")

READ_ERRORS = (SourceError, GitError, KeyError, ValueError, OSError, SignatureSetupError)
"""A commit could not be read or verified: the attempt failed (retried), it is not the commit's fault."""


class Reconciler:
    def __init__(self, settings: ServeSettings, store: Store, cache: ConfigCache, mirror: Mirror, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.cache = cache
        self.mirror = mirror
        self.metrics = metrics
        self.history = HistoryLog(settings.state_dir)
        self.signatures = SignaturePolicy(settings.verify_signatures, settings.gpg_keyring)
        self.engine: Engine | None = None
        """Made once the repository is open (`start`)."""
        self.lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.listeners: list[Callable[[Attempt], None]] = []
        """Called with every attempt that changed or kept what is served (stream rechecks, tests)."""
        self.acks = AckTracker(store, store.current_generation, enabled=settings.rollback_on_nack)
        self.refused: dict[str, Attempt] = {}
        """Revisions proxies rejected (rollback-on-nack): not tried again until the branch moves."""
        self.held: dict[str, Attempt] = {}
        """Verdicts on branch heads while pinned, so each is validated once."""
        self.rebuild_failure: str | None = None
        """Why the last rebuild of the applied revision failed (a CA that broke while serving)."""
        self.renewal = RenewalTimer(self.rebuild)
        self.fetch_failing_since: float | None = None
        """`time.time()` of the first of the fetches failing in a row; None after a good one (readiness)."""
        self.pinning: str | None = None
        """The revision a rollback through this replica is pinning: whichever reconcile applies it
        first (the watch loop may see the pin before the rollback's own reconcile) records it as the rollback."""

    @property
    def branch(self) -> str:
        return self.settings.branch

    def restore_verdicts(self) -> None:
        """From the history log: commits proxies rejected stay refused, heads held stay held."""
        latest = self.history.latest(self.branch)
        refused, held = decide.restored_verdicts({r: rec.outcome for r, rec in latest.items()}, pinned=self.mirror.pin() is not None)
        for revision, record in latest.items():
            if revision in refused:
                self.refused[revision] = attempt_of(record)
            elif revision in held:
                self.held[revision] = attempt_of(record)

    def git_unreachable(self) -> str | None:
        """Why the remote cannot be read, and since when, while the last fetch failed (readiness)."""
        failing, error = self.fetch_failing_since, self.store.fetch_error
        if failing is None or error is None:
            return None
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(failing))
        return f"git unreachable since {since} ({time.time() - failing:.0f}s ago): {error}"

    # -- reconcile ----------------------------------------------------------------------
    async def reconcile(self, reason: str, *, fetch: bool = True) -> Attempt:
        """Fetch (a remote, when `fetch`), then reconcile the tracked branch, or the pin, now.

        While pinned, the branch head is validated once and recorded as held (or rejected).
        """
        fetching = self.mirror.remote and fetch
        try:
            if fetching:
                await asyncio.to_thread(self.mirror.fetch)
                self.store.fetch_error = None
                self.fetch_failing_since = None
            pin = self.mirror.pin()
            refs = decide.Refs(head=self.mirror.head(), pin=pin)
            target = decide.choose_target(refs)
            if isinstance(target, decide.BranchMissing):
                raise SourceError(f"branch {self.branch!r} not found in {self.mirror.redact(self.settings.repo)}")
        except (SourceError, GitError, KeyError, OSError) as e:
            message = self.mirror.redact(f"{'fetch' if fetching else 'cannot read repository'}: {e}")
            if fetching:
                self.store.fetch_error = f"{message}; retrying in {self.settings.fetch_interval:g}s"
                if self.fetch_failing_since is None:
                    self.fetch_failing_since = time.time()
            last = self.store.last_attempt
            attempt = Attempt(
                last.revision if last else "", "failed", message, cause="GitOperationFailed" if fetching else "", trigger=reason
            )
            self.store.record(attempt)
            self.metrics.reconciles.labels(outcome="failed").inc()
            log.warning("repository not read", extra={"error": message, "reason": reason})
            return attempt
        self.store.pin = refs.pin
        self.store.recovered()
        if isinstance(target, decide.Follow):
            self.held.clear()
            return await self.reconcile_to(target.revision, reason)
        attempt = await self.reconcile_to(target.revision, reason, pinned=True)
        if target.hold is not None:
            await self.hold(target.hold, target.revision, reason)
        return attempt

    async def judge(self, revision: str, started: float, trigger: str) -> tuple[Attempt | None, Any]:
        """Read, verify the signature of and validate one commit (judge.py)."""
        assert self.engine is not None
        rejection, evaluation = await judge(self.engine, self.mirror, self.signatures, revision, started, trigger)
        if evaluation is not None:
            self.observe_phases(evaluation.timings)
        return rejection, evaluation

    def observe_phases(self, timings: dict[str, float]) -> None:
        for phase, seconds in timings.items():
            self.metrics.phase_duration.labels(phase=phase).observe(seconds)

    async def reconcile_to(self, revision: str, reason: str, *, pinned: bool = False) -> Attempt:
        assert self.engine is not None
        if pinned and revision == self.pinning:
            reason = "rollback"
        async with self.lock:
            applied = self.store.applied
            last = self.store.last_attempt
            action = decide.serve_decision(
                revision,
                applied=applied.revision if applied else None,
                last=decide.Known(last.revision, last.outcome) if last else None,
                refused=self.refused,
            )
            if isinstance(action, decide.KeepServing):
                return Attempt(revision, "unchanged", "already applied")
            if isinstance(action, decide.RepeatVerdict):
                if action.outcome == "rejected-by-proxies":
                    self.remember(self.refused[revision])
                    return self.refused[revision]
                assert last is not None
                return last
            started = time.perf_counter()
            self.store.reconciling = True
            ref_update: tuple[str, str, str] | None = None
            try:
                rejection, evaluation = await self.judge(revision, started, reason)
                if rejection is not None:
                    raise Rejected(rejection)
                try:
                    build = await asyncio.to_thread(self.engine.build, evaluation.snapshot, self.store.registrations())
                except CaError as e:
                    attempt = Attempt(
                        evaluation.revision,
                        "rejected",
                        f"mTLS: {e}",
                        (Problem(None, None, None, "", f"mTLS: {e}"),),
                        duration=time.perf_counter() - started,
                        trigger=reason,
                    )
                    raise Rejected(attempt) from None
                except InternalError as e:
                    raise Rejected(internal_error(evaluation.revision, e.message, started, reason)) from None
                self.observe_phases(build.timings)
                rolled_back = await self._rolled_back(applied.revision, evaluation.revision) if pinned and applied is not None else None
                # From here to recording the attempt nothing awaits: a status read in between
                # would see the new revision with the old conditions.
                push = self.publish(build, evaluation.revision)
                self.store.apply(Applied(evaluation.revision, evaluation.snapshot, build.model, time.time(), shapes(build)))
                how = f"pinned by refs/reconciler/pin, {reason}" if pinned else reason
                ref_update = (APPLIED_REF, evaluation.revision, f"reconciler: applied {evaluation.revision[:12]} ({how})")
                if rolled_back is not None:
                    self.record(rolled_back)
                    self.held[rolled_back.revision] = rolled_back  # as the head while pinned, it stays "rolled back"
                attempt = Attempt(
                    evaluation.revision,
                    "applied",
                    f"Applied revision: {revision_string(self.branch, evaluation.revision)}",
                    evaluation.report.warnings,
                    duration=time.perf_counter() - started,
                    trigger=reason,
                    phases={**evaluation.timings, **build.timings, "push": push},
                    proxies_changed=len(build.changed),
                )
                self.acks.check()
            except Rejected as rejected:
                attempt = rejected.attempt
            except READ_ERRORS as e:
                attempt = Attempt(
                    revision,
                    "failed",
                    f"reconcile failed: {self.mirror.redact(str(e))}",
                    duration=time.perf_counter() - started,
                    trigger=reason,
                )
            except Exception as e:  # a bug anywhere else in here: recorded once as this commit's rejection
                log.debug("internal error", exc_info=e, extra={"revision": revision[:12]})
                attempt = internal_error(revision, describe_bug(e, f"reconciling {revision[:12]}"), started, reason)
            finally:
                self.store.reconciling = False
            self.record(attempt)
            if ref_update is not None:
                await asyncio.to_thread(self.mirror.write_ref, *ref_update)
            self.metrics.reconciles.labels(outcome=attempt.outcome).inc()
            self.metrics.reconcile_duration.observe(attempt.duration)
            log.info(
                "reconciled",
                extra={
                    "revision": revision[:12],
                    "outcome": attempt.outcome,
                    "reason": reason,
                    "ms": round(attempt.duration * 1000, 1),
                    **{f"{phase}_ms": round(seconds * 1000, 1) for phase, seconds in attempt.phases.items()},
                },
            )
            self.tell(attempt)
            return attempt

    def tell(self, attempt: Attempt) -> None:
        for listener in list(self.listeners):
            listener(attempt)

    def record(self, attempt: Attempt) -> None:
        """Into the store, and for a commit's outcome into the history log."""
        self.store.record(attempt)
        if attempt.revision and attempt.outcome != "unchanged":
            self.history.append(record_of(attempt, self.branch))

    def remember(self, attempt: Attempt) -> None:
        """Show a verdict from before a restart in the status, once (not logged again)."""
        if self.store.last_attempt is not attempt and attempt not in self.store.history:
            self.store.record(attempt)

    async def _rolled_back(self, previous: str, now: str) -> Attempt | None:
        """A pin moves serving from `previous` to `now`: unless `now` is newer, `previous` is rolled back."""
        if previous == now:
            return None
        try:
            newer = await asyncio.to_thread(self.mirror.descends_from, now, previous)
        except (GitError, KeyError, ValueError):
            newer = False
        if not decide.rolled_back(previous, now, now_descends=newer):
            return None
        return Attempt(
            previous,
            "rolled-back",
            f"serving moved back to {revision_string(self.branch, now)} by refs/reconciler/pin",
            trigger="rollback",
            to=now,
        )

    async def hold(self, head: str, pin: str, reason: str) -> Attempt:
        """Validate the branch head while pinned: recorded as held (valid) or rejected, not applied."""
        action = decide.hold_decision(head, {r: a.outcome for r, a in self.held.items()})
        if isinstance(action, decide.RepeatVerdict):
            known = self.held[head]
            self.remember(known)
            return known
        async with self.lock:
            started = time.perf_counter()
            try:
                rejection, _ = await self.judge(head, started, reason)
            except READ_ERRORS as e:
                rejection = Attempt(head, "failed", f"cannot validate: {self.mirror.redact(str(e))}", trigger=reason)
            except Exception as e:
                log.debug("internal error", exc_info=e, extra={"revision": head[:12]})
                rejection = internal_error(head, describe_bug(e, f"validating {head[:12]}"), started, reason)
            attempt = rejection or Attempt(
                head,
                "held",
                f"valid; not applied: serving is pinned to {revision_string(self.branch, pin)}",
                duration=time.perf_counter() - started,
                trigger=reason,
            )
            self.held[head] = attempt
            self.record(attempt)
            self.metrics.reconciles.labels(outcome=attempt.outcome).inc()
            log.info("held while pinned", extra={"revision": head[:12], "outcome": attempt.outcome, "pin": pin[:12]})
            return attempt

    # -- publishing ---------------------------------------------------------------------
    def publish(self, build: Build, revision: str) -> float:
        """Into the xDS cache, which wakes the streams of the proxies whose config changed (the
        `push` phase); returns its seconds."""
        assert self.engine is not None
        started = time.perf_counter()
        for node_id, resources in build.changed.items():
            self.cache.set(node_id, resources, revision)
        for node_id in build.removed:
            self.cache.remove(node_id)
        push = time.perf_counter() - started
        self.metrics.phase_duration.labels(phase="push").observe(push)
        self.engine.commit(build)
        self.rebuild_failure = None
        loop = asyncio.get_running_loop()
        loop.call_later(2.0, release_free_memory)
        # Rebuild when the first proxy certificate is due, so it is replaced before it expires.
        self.renewal.at(loop, self.engine.certs.next_renewal(), stopping=self.stopping.is_set())
        return push

    async def rebuild(self, reason: str) -> None:
        """Regenerate from the applied commit after a runtime change (a dataplane came or went)."""
        assert self.engine is not None
        async with self.lock:
            applied = self.store.applied
            if applied is None:
                return
            try:
                build = await asyncio.to_thread(self.engine.build, applied.snapshot, self.store.registrations())
            except (CaError, InternalError) as e:  # the proxies keep the config they have
                # ...but certificates due for renewal are not renewed: not Ready, and try again.
                self.rebuild_failure = f"rebuilding the applied revision ({reason}) failed: {e}; proxies keep their config, certificates are not renewed until it succeeds (retrying every {REBUILD_RETRY:g}s)"
                log.error("rebuild failed", extra={"reason": reason, "error": str(e), "retry_s": REBUILD_RETRY})
                if not self.stopping.is_set():
                    self.renewal.retry(REBUILD_RETRY, reason)
                return
            self.observe_phases(build.timings)
            self.publish(build, applied.revision)
            self.store.apply(Applied(applied.revision, applied.snapshot, build.model, applied.applied_at, shapes(build)))
            log.info("rebuilt", extra={"reason": reason, "changed": len(build.changed)})
