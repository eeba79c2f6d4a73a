"""`reconciler serve`: the control plane assembled from its parts, like go-control-plane's
example server.

    mirror (source/mirror.py) ─▶ Reconciler (loop.py: decide.py's answers carried out)
                                   │ Engine in a worker thread; publishes into
                                   ▼
    ConfigCache ◀── AdsServer (gRPC, grpc_setup.py) ◀── ProxyEvents (proxy_events.py)
    Store, Metrics ◀── ApiServer (reconciler/api, through the ApiBackend protocol)

`ControlPlane` only makes these, starts them in order (setup files, repository, gRPC, restart
state, first reconcile, HTTP, watcher) and stops them; the work happens in the parts.

Git is also the state: `refs/reconciler/applied` names the commit served (each update is in
its reflog, `git log -g refs/reconciler/applied`), `refs/reconciler/pin` the commit a
rollback pinned serving to. Every outcome is appended to `<state-dir>/history.jsonl`
(reconciler.history), so `reconciler history` tells what happened to each commit across restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from reconciler.api.admin_token import AdminToken, AdminTokenError
from reconciler.api.admin_token import load_or_create as load_admin_token
from reconciler.api.admin_token import load_shared as load_shared_admin_token
from reconciler.api.gui import gui_routes
from reconciler.api.kuma import kuma_routes
from reconciler.api.metrics import Metrics
from reconciler.api.routes import routes
from reconciler.api.server import ApiServer
from reconciler.ca.provider import CertificateProvider
from reconciler.ca.statefiles import StateFileError
from reconciler.ca.store import CaStore
from reconciler.ca.xds_tls import check_state as check_xds_tls
from reconciler.controlplane import rollback
from reconciler.controlplane.commit_diff import commit_diff
from reconciler.controlplane.grpc_setup import Admission, make_grpc_server
from reconciler.controlplane.health import HealthEvents
from reconciler.controlplane.loop import Reconciler
from reconciler.controlplane.proxy_events import ProxyEvents
from reconciler.controlplane.registrations import RegistrationSync, replica_id
from reconciler.controlplane.settings import ServeSettings, SetupError
from reconciler.controlplane.watch import Watcher
from reconciler.history import branch_history
from reconciler.ports import listen_error
from reconciler.reconcile import VIPS_FILE, Engine
from reconciler.source.git import GitSource, SourceError
from reconciler.source.mirror import Mirror
from reconciler.source.remote import CredentialError, GitCredentials, redact_url
from reconciler.source.signatures import SignatureSetupError
from reconciler.store import Attempt, Lockout, Store
from reconciler.xds.cache import ConfigCache

__all__ = ["ControlPlane"]

log = logging.getLogger("reconciler.controlplane")


class ControlPlane:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.cache = ConfigCache()
        self.store = Store(settings.branch, current_generation=self._generation_of)
        self.metrics = Metrics(self.store)
        self.mirror = Mirror(
            settings.repo, settings.branch, settings.state_dir, known_hosts=settings.git_known_hosts, ca_file=settings.git_ca_file
        )
        self.reconciler = Reconciler(settings, self.store, self.cache, self.mirror, self.metrics)
        self.admission = Admission(settings, self.store)
        self.proxy_events = ProxyEvents(self.reconciler, self.admission)
        self.health = HealthEvents(self.reconciler, self.admission, settings.hds)
        self.watcher = Watcher(self.reconciler)
        self.registrations: RegistrationSync | None = None
        self._grpc: grpc.aio.Server | None = None
        self._http: ApiServer | None = None
        self.admin_token: AdminToken | None = None
        """What the API's calls that change what is served must present (`<state>/admin-token`)."""
        self.xds_serving = False
        self.store.lockouts.append(
            lambda: [Lockout("RebuildFailed", self.reconciler.rebuild_failure)] if self.reconciler.rebuild_failure else []
        )
        self.xds_port = 0
        self.api_port = 0
        self._webhook_secret: bytes | None = None

    def _generation_of(self, node_id: str) -> int | None:
        config = self.cache.fetch(node_id)
        return config.generation if config else None

    @property
    def listeners(self) -> list[Callable[[Attempt], None]]:
        """Called with each attempt of the reconcile loop."""
        return self.reconciler.listeners

    @property
    def engine(self) -> Engine | None:
        return self.reconciler.engine

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        Path(self.settings.state_dir).mkdir(parents=True, exist_ok=True)
        self._load_setup()
        try:
            keys_dir = self.settings.keys_dir
            self.admin_token = load_shared_admin_token(keys_dir) if keys_dir else load_admin_token(self.settings.state_dir)
        except AdminTokenError as e:
            raise SetupError(str(e)) from None
        # Both ports are checked before anything is read or served (the xDS port where its
        # server is made), so a taken one fails the start at once.
        api_in_use = listen_error(self.settings.api_address, self.settings.api_port)
        if api_in_use is not None:
            raise SetupError(f"cannot serve the API on {self.settings.api_address}:{self.settings.api_port}: {api_in_use}")
        repo = await asyncio.to_thread(self.mirror.open)
        self.reconciler.engine = Engine(
            GitSource(repo, self.settings.path),
            CertificateProvider(CaStore(self.settings.state_dir, self.settings.keys_dir)),
            self.settings.compact_outbounds,
            vips_file=Path(self.settings.state_dir) / VIPS_FILE,
        )
        self._grpc, self.xds_port = make_grpc_server(
            self.settings, self.admission, self.cache, self.proxy_events, self.health if self.settings.hds.enabled else None
        )
        self.reconciler.listeners.append(self.admission.recheck_streams)
        # Kuma's read API and the GUI first: their fixed paths (`/meshes/{mesh}/dataplanes/_overview`)
        # must match before the patterns that would take them as a name.
        self._http = ApiServer([*kuma_routes(self), *gui_routes(self), *routes(self)], self.admin_token)
        self.reconciler.restore_verdicts()
        # Resume what was served before a restart, then catch up with the branch (or the pin).
        previous = self.mirror.applied()
        if previous is not None:
            await self.reconciler.reconcile_to(previous, "restart")
        await self.reconcile("start")
        await self._grpc.start()
        self.xds_serving = True
        try:
            self.api_port = await self._http.start(self.settings.api_address, self.settings.api_port)
        except OSError as e:  # taken between the check and the bind
            raise SetupError(f"cannot serve the API on {self.settings.api_address}:{self.settings.api_port}: {e.strerror or e}") from None
        self.registrations = RegistrationSync(
            self.reconciler,
            replica_id(self.settings.state_dir),
            heartbeat=self.settings.registration_heartbeat,
            poll=self.settings.fetch_interval if self.mirror.remote else self.settings.poll_interval,
        )
        self.proxy_events.shared = self.registrations
        self.registrations.start()
        self.watcher.start()
        log.info("admin token", extra={"path": str(self.admin_token.path), "token_id": self.admin_token.id})
        log.info(
            "serving", extra={"xds": f"{self.settings.address}:{self.xds_port}", "api": f"{self.settings.api_address}:{self.api_port}"}
        )

    def _load_setup(self) -> None:
        """Read credential, secret and key files once; a missing or unusable one stops the start
        (SetupError), and so does a lost key (one other state shows existed) unless
        `rotate_missing_keys`, which replaces it and keeps Ready False until the next start."""
        s = self.settings
        rec = self.reconciler
        try:
            if self.mirror.remote:
                credentials = self.mirror.credentials = GitCredentials.load(
                    token_file=s.git_token_file, username=s.git_username, ssh_key=s.git_ssh_key, known_hosts=s.git_known_hosts
                )
                log.info("remote repository", extra={"url": self.mirror.redact(s.repo), "credentials": credentials.describe()})
            elif s.git_token_file or s.git_ssh_key:
                log.warning("git credentials ignored: the repository is local", extra={"repo": s.repo})
            if s.webhook_secret_file:
                secret = Path(s.webhook_secret_file).read_bytes().strip()
                if not secret:
                    raise SetupError(f"the webhook secret file {s.webhook_secret_file} is empty")
                self._webhook_secret = secret
            if rec.signatures.enabled:
                rec.signatures = rec.signatures.check_setup()
                log.info(
                    "commit signatures verified",
                    extra={"allowed_signers": rec.signatures.allowed_signers or "-", "gpg_keyring": rec.signatures.gpg_keyring or "-"},
                )
            # Every key file of the state directory (or the keys directory), now: an unusable or
            # lost one stops the start.
            if s.keys_dir is not None and not Path(s.keys_dir).is_dir():
                raise SetupError(f"the keys directory {s.keys_dir} does not exist: make it with `reconciler keys init --out {s.keys_dir}`")
            rotated = CaStore(s.state_dir, s.keys_dir).check_keys(rotate_missing=s.rotate_missing_keys)
            if s.xds_tls != "none":
                rotated += [r for r in [check_xds_tls(s.state_dir, rotate_missing=s.rotate_missing_keys, keys_dir=s.keys_dir)] if r]
            self.admission.authenticator()
        except (CredentialError, SignatureSetupError, StateFileError) as e:
            raise SetupError(str(e)) from None
        except OSError as e:
            raise SetupError(f"cannot read {e.filename}: {e.strerror}") from None
        for what in rotated:
            log.warning("lost key replaced", extra={"what": what})
        if rotated:
            self.store.lockouts.append(lambda: [Lockout("KeysRotated", what) for what in rotated])

    async def stop(self) -> None:
        self.reconciler.stopping.set()
        self.xds_serving = False
        self.reconciler.renewal.cancel()
        if self.registrations is not None:
            await self.registrations.stop()
        await self.watcher.stop()
        if self._http is not None:
            await self._http.stop()
        if self._grpc is not None:
            await self._grpc.stop(grace=0.5)

    async def run_forever(self) -> None:
        try:  # a start that fails half way stops what it started (the gRPC server) too
            await self.start()
            await self.reconciler.stopping.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        self.reconciler.stopping.set()

    # -- what the HTTP API asks (reconciler.api.backend.ApiBackend) -----------------------
    @property
    def branch(self) -> str:
        return self.settings.branch

    @property
    def webhook_secret(self) -> bytes | None:
        return self._webhook_secret

    @property
    def repository(self) -> str:
        return redact_url(self.settings.repo)

    @property
    def compact_outbounds(self) -> int | None:
        return self.settings.compact_outbounds

    async def commit_diff(self, revision: str) -> dict[str, Any] | None:
        engine = self.engine
        if engine is None:
            return None
        async with self.reconciler.lock:  # the repository is read by one thread at a time
            try:
                return await asyncio.to_thread(commit_diff, engine.source, revision)
            except SourceError:
                return None

    async def reconcile(self, reason: str, *, fetch: bool = True) -> Attempt:
        """Fetch (a remote, when `fetch`), then reconcile the tracked branch, or the pin, now."""
        return await self.reconciler.reconcile(reason, fetch=fetch)

    async def rebuild(self, reason: str) -> None:
        """Regenerate from the applied commit after a runtime change."""
        await self.reconciler.rebuild(reason)

    async def rollback(self, rev: str, *, force: bool = False, requested_by: str = "") -> tuple[int, dict[str, Any]]:
        """Pin serving to `rev` (reconciler/controlplane/rollback.py): (HTTP status, body)."""
        return await rollback.pin(self.reconciler, rev, force=force, requested_by=requested_by)

    async def resume(self) -> dict[str, Any]:
        """Delete the pin and follow the branch again."""
        return await rollback.resume(self.reconciler)

    def wake(self, *, fetch: bool = False, trigger: str = "watch") -> None:
        """Ask the watch loop to check the repository now (with `fetch`, a remote too)."""
        self.watcher.wake(fetch=fetch, trigger=trigger)

    def not_ready(self) -> list[str]:
        """Why proxies should not be sent here yet (`GET /readyz`); empty when a commit is
        applied and the xDS server is serving."""
        reasons = []
        if self.store.applied is None:
            last = self.store.last_attempt
            reasons.append("no commit applied yet" + (f": {last.message}" if last is not None and last.message else ""))
        if not self.xds_serving:
            reasons.append("the xDS server is not serving")
        unreachable = self.reconciler.git_unreachable()
        if unreachable is not None:  # still serving the last good commit, which may be stale
            reasons.append(unreachable)
        return reasons

    async def branch_history(self, limit: int) -> dict[str, Any]:
        """The tracked branch's commits, newest first, with their outcomes (`GET /history`)."""
        served = self.store.applied.revision if self.store.applied else None
        async with self.reconciler.lock:  # the repository is read by one thread at a time
            return await asyncio.to_thread(
                branch_history,
                self.mirror.repository,
                self.settings.branch,
                self.reconciler.history.read(),
                served=served,
                pinned=self.store.pin,
                limit=limit,
            )
