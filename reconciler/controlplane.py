"""`reconciler serve`: watch the repository, reconcile each new commit, serve xDS and the API.

The I/O end of the pipeline. It owns the event loop objects (store, cache, gRPC and HTTP
servers, the git watcher); the CPU-heavy work (`Engine`) runs in a worker thread, one
reconcile at a time, and its results are applied back in the loop's thread.

Git is also the state: `refs/reconciler/applied` names the commit served (each update is in
its reflog, `git log -g refs/reconciler/applied`), `refs/reconciler/pin` the commit a
rollback pinned serving to. The watcher reacts to both refs and to the branch. Every outcome
is appended to `<state-dir>/history.jsonl` (reconciler.history), so `reconciler history`
tells what happened to each commit across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pygit2
from envoy.config.core.v3 import base_pb2

from reconciler.api.admin_token import AdminToken, AdminTokenError
from reconciler.api.admin_token import load_or_create as load_admin_token
from reconciler.api.metrics import Metrics
from reconciler.api.routes import routes
from reconciler.api.server import ApiServer
from reconciler.ca.authority import CaError
from reconciler.ca.provider import CertificateProvider
from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.statefiles import ROTATE_FLAG, StateFileError
from reconciler.ca.store import CaStore
from reconciler.ca.xds_tls import ca_cert_path, default_names, load_or_create
from reconciler.ca.xds_tls import check_state as check_xds_tls
from reconciler.errors import Problem
from reconciler.history import HistoryLog, Record, branch_history
from reconciler.mesh.shape import ShapeChoice
from reconciler.ports import listen_error
from reconciler.reconcile import Build, Engine, InternalError
from reconciler.source.git import APPLIED_REF, PIN_REF, GitSource, SourceError, delete_ref, write_ref
from reconciler.source.remote import CredentialError, GitCredentials, is_remote, make_callbacks, redact, use_known_hosts
from reconciler.source.signatures import SignaturePolicy, SignatureSetupError, verify_commit
from reconciler.store import Applied, Attempt, Lockout, Store, revision_string
from reconciler.validate.bugs import describe_bug
from reconciler.xds.cache import ConfigCache, NodeConfig
from reconciler.xds.registration import DATAPLANE_METADATA_KEY, registered_dataplane
from reconciler.xds.resources import SHORT_NAMES
from reconciler.xds.security import (
    AuthorizedWatcher,
    DataplaneAuthenticator,
    StreamGuard,
    XdsCall,
    current_call,
    server_credentials,
    split_node_id,
)
from reconciler.xds.server import FIRST_REQUEST_TIMEOUT, AdsServer, add_ads_server

__all__ = ["ServeSettings", "ControlPlane", "SetupError", "APPLIED_REF", "PIN_REF", "DATAPLANE_METADATA_KEY"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServeSettings:
    repo: str
    branch: str = "main"
    path: str = ""
    state_dir: str = ".reconciler"
    address: str = "127.0.0.1"
    xds_port: int = 5678
    api_port: int = 5681
    poll_interval: float = 1.0
    """Seconds between checks of the branch (file events wake the loop sooner)."""
    dataplane_auth: str = "dpToken"
    """`dpToken` (Kuma's default): a proxy is served only with a dataplane token that names it;
    `none`: any proxy gets the config of the node id it claims."""
    xds_tls: str = "builtin"
    """`builtin`: xDS over TLS, with a certificate from the control plane's own CA in the state
    directory (`<state>/xds-tls/ca.crt` verifies it); `none`: plaintext, for local experiments."""
    xds_tls_names: tuple[str, ...] = ()
    """Extra DNS names or IP addresses for the xDS server certificate."""
    xds_first_request_timeout: float = FIRST_REQUEST_TIMEOUT
    """Seconds a new xDS stream has to send its first request (with the node) before it is closed."""
    fetch_interval: float = 60.0
    """Remote repositories: seconds between fetches. A webhook, `reconcile --server`, `rollback`
    and `resume` fetch at once; `poll_interval` still governs how often the mirror's refs
    (the pin) are read."""
    git_username: str = "x-access-token"
    git_token_file: str | None = None
    """HTTPS token (else $RECONCILER_GIT_TOKEN), sent as basic auth with `git_username`."""
    git_ssh_key: str | None = None
    git_known_hosts: str | None = None
    git_ca_file: str | None = None
    """CA certificates (PEM) that verify an HTTPS git server, instead of the system's."""
    webhook_secret_file: str | None = None
    """Shared secret of `POST /hooks/git`; without it the endpoint answers 404."""
    verify_signatures: str | None = None
    """Allowed-signers file: only commits with a trusted SSH signature are applied."""
    gpg_keyring: str | None = None
    """Binary OpenPGP keyring: commits with a GPG signature by one of its keys are trusted."""
    rollback_on_nack: bool = False
    """When proxies NACK a new commit, serve again the last commit every proxy accepted."""
    rotate_missing_keys: bool = False
    """Replace a key that other state shows existed (a CA whose certificate proxies hold, a token
    signing key with a public record) instead of refusing to start; what depended on it stops
    working, and status says so (Ready=False, KeysRotated) until the next start."""
    api_address: str = "127.0.0.1"
    """Where the HTTP API listens, apart from `address` (xDS): exposing xDS to other hosts
    leaves the API on loopback unless this says otherwise."""
    compact_outbounds: int | None = None
    """Proxies with at least this many outbounds get the compact outbound shape (one listener
    for all of them); None: Kuma's shape unless a Dataplane's label asks (reconciler/mesh/shape.py)."""


REBUILD_RETRY = 10.0
"""Seconds between attempts to rebuild the applied revision after a rebuild failed."""


class SetupError(Exception):
    """A setting cannot be used (a missing credential or key file): serve exits with code 2."""


@dataclass
class _Watch:
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class ControlPlane:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.cache = ConfigCache()
        self.store = Store(settings.branch, current_generation=self._generation_of)
        self.metrics = Metrics()
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._watch = _Watch()
        self._grpc: grpc.aio.Server | None = None
        self._http: ApiServer | None = None
        self.admin_token: AdminToken | None = None
        """What the API's calls that change what is served must present (`<state>/admin-token`)."""
        self.xds_serving = False
        self._streams: dict[str, int] = {}
        self._renewal: asyncio.TimerHandle | None = None
        self._rebuild_failure: str | None = None
        """Why the last rebuild of the applied revision failed (a CA that broke while serving)."""
        self.store.lockouts.append(lambda: [Lockout("RebuildFailed", self._rebuild_failure)] if self._rebuild_failure else [])
        self.repo: pygit2.Repository | None = None
        self.engine: Engine | None = None
        self.remote = is_remote(settings.repo)
        self.xds_port = 0
        self.api_port = 0
        self.listeners: list[Callable[[Attempt], None]] = []
        self.history = HistoryLog(settings.state_dir)
        self.credentials: GitCredentials | None = None
        self.signatures = SignaturePolicy(settings.verify_signatures, settings.gpg_keyring)
        self._webhook_secret: bytes | None = None
        self._refused: dict[str, Attempt] = {}
        """Revisions proxies rejected (rollback-on-nack): not tried again until the branch moves."""
        self._held: dict[str, Attempt] = {}
        """Verdicts on branch heads while pinned, so each is validated once."""
        self._accepted: str | None = None
        """The last revision every connected proxy ACKed (rollback-on-nack's way back)."""
        self._awaiting_ack: set[str] = set()
        """rollback-on-nack: proxies that have not ACKed the applied revision yet."""
        self._fetch_requested = True
        self._last_fetch = 0.0
        self._trigger = "watch"
        self._declare_metrics()

    def _generation_of(self, node_id: str) -> int | None:
        config = self.cache.fetch(node_id)
        return config.generation if config else None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        Path(self.settings.state_dir).mkdir(parents=True, exist_ok=True)
        self._load_setup()
        try:
            self.admin_token = load_admin_token(self.settings.state_dir)
        except AdminTokenError as e:
            raise SetupError(str(e)) from None
        # Both ports are checked before anything is read or served (the xDS port where its
        # server is made), so a taken one fails the start at once.
        api_in_use = listen_error(self.settings.api_address, self.settings.api_port)
        if api_in_use is not None:
            raise SetupError(f"cannot serve the API on {self.settings.api_address}:{self.settings.api_port}: {api_in_use}")
        self.repo = await asyncio.to_thread(self._open_repository)
        self.engine = self._make_engine()
        self._grpc, self.xds_port = self._make_grpc_server()
        self._http = ApiServer(routes(self), self.admin_token)
        self._restore_verdicts()
        # Resume what was served before a restart, then catch up with the branch (or the pin).
        previous = self._ref(APPLIED_REF)
        if previous is not None:
            await self._reconcile_to(previous, "restart")
        await self.reconcile("start")
        await self._grpc.start()
        self.xds_serving = True
        try:
            self.api_port = await self._http.start(self.settings.api_address, self.settings.api_port)
        except OSError as e:  # taken between the check and the bind
            raise SetupError(f"cannot serve the API on {self.settings.api_address}:{self.settings.api_port}: {e.strerror or e}") from None
        self._watch.task = asyncio.create_task(self._watch_loop())
        log.info("admin token", extra={"path": str(self.admin_token.path), "token_id": self.admin_token.id})
        log.info(
            "serving", extra={"xds": f"{self.settings.address}:{self.xds_port}", "api": f"{self.settings.api_address}:{self.api_port}"}
        )

    def _load_setup(self) -> None:
        """Read credential, secret and key files once; a missing or unusable one stops the start
        (SetupError), and so does a lost key (one other state shows existed) unless
        `rotate_missing_keys`, which replaces it and keeps Ready False until the next start."""
        s = self.settings
        try:
            if self.remote:
                self.credentials = GitCredentials.load(
                    token_file=s.git_token_file, username=s.git_username, ssh_key=s.git_ssh_key, known_hosts=s.git_known_hosts
                )
                log.info(
                    "remote repository", extra={"url": redact(s.repo, self.credentials.secrets), "credentials": self.credentials.describe()}
                )
            elif s.git_token_file or s.git_ssh_key:
                log.warning("git credentials ignored: the repository is local", extra={"repo": s.repo})
            if s.webhook_secret_file:
                secret = Path(s.webhook_secret_file).read_bytes().strip()
                if not secret:
                    raise SetupError(f"the webhook secret file {s.webhook_secret_file} is empty")
                self._webhook_secret = secret
            if self.signatures.enabled:
                self.signatures = self.signatures.check_setup()
                log.info(
                    "commit signatures verified",
                    extra={"allowed_signers": self.signatures.allowed_signers or "-", "gpg_keyring": self.signatures.gpg_keyring or "-"},
                )
            # Every key file of the state directory, now: an unusable or lost one stops the start.
            rotated = CaStore(s.state_dir).check_keys(rotate_missing=s.rotate_missing_keys)
            if s.xds_tls != "none":
                rotated += [r for r in [check_xds_tls(s.state_dir, rotate_missing=s.rotate_missing_keys)] if r]
            self._authenticator()
        except (CredentialError, SignatureSetupError, StateFileError) as e:
            raise SetupError(str(e)) from None
        except OSError as e:
            raise SetupError(f"cannot read {e.filename}: {e.strerror}") from None
        for what in rotated:
            log.warning("lost key replaced", extra={"what": what})
        if rotated:
            self.store.lockouts.append(lambda: [Lockout("KeysRotated", what) for what in rotated])

    def _restore_verdicts(self) -> None:
        """From the history log: commits proxies rejected stay refused, heads held stay held."""
        pinned = self._ref(PIN_REF) is not None
        for revision, record in self.history.latest(self.settings.branch).items():
            if record.outcome == "rejected-by-proxies":
                self._refused[revision] = _attempt_of(record)
            elif pinned and record.outcome in ("held", "rolled-back"):
                self._held[revision] = _attempt_of(record)

    def _make_engine(self) -> Engine:
        assert self.repo is not None
        return Engine(
            GitSource(self.repo, self.settings.path), CertificateProvider(CaStore(self.settings.state_dir)), self.settings.compact_outbounds
        )

    def _make_grpc_server(self) -> tuple[grpc.aio.Server, int]:
        """The xDS gRPC server with ADS registered, bound to the xDS port: over TLS unless
        `xds_tls` is none, each stream behind the guard that admission and revocation use.

        The port is this process's alone: gRPC's default SO_REUSEPORT would let a second
        control plane (with another CA and other keys) share it and take half the proxies.
        A port in use is a SetupError naming it."""
        guard = self._stream_guard()
        auth = self._authenticator()  # make or load the signing key now, not on the first proxy
        self.listeners.append(self._recheck_streams)

        def refusal(call: XdsCall) -> tuple[grpc.StatusCode, str] | None:
            # Checked before each config a stream gets: a commit or another stream's
            # registration may have changed which Dataplane is served to its node.
            if auth is None:
                return None
            auth.use(self.store.applied.snapshot if self.store.applied else None)
            return auth.recheck(call, self.store.registered.get(call.node_id))

        server = grpc.aio.server(
            interceptors=[guard],
            options=[
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.so_reuseport", 0),
            ],
        )
        ads = AdsServer(
            AuthorizedWatcher(self.cache, refusal), _Callbacks(self), first_request_timeout=self.settings.xds_first_request_timeout
        )
        add_ads_server(server, ads)
        address = f"{self.settings.address}:{self.settings.xds_port}"
        in_use = listen_error(self.settings.address, self.settings.xds_port)
        if in_use is not None:
            raise SetupError(f"cannot serve xDS on {address}: {in_use}")
        try:
            if self.settings.xds_tls == "none":
                log.warning("xds served without tls", extra={"address": address})
                return server, server.add_insecure_port(address)
            names = default_names(self.settings.address, self.settings.xds_tls_names)
            state_dir = self.settings.state_dir
            port = server.add_secure_port(address, server_credentials(lambda: load_or_create(state_dir, names)))
        except RuntimeError as e:  # taken between the check and the bind
            raise SetupError(f"cannot serve xDS on {address}: {e}") from None
        log.info("xds tls", extra={"ca_cert": str(ca_cert_path(state_dir)), "names": ",".join(names)})
        return server, port

    def _stream_guard(self) -> StreamGuard:
        guard: StreamGuard | None = self.__dict__.get("_guard")
        if guard is None:
            guard = self._guard = StreamGuard()
        return guard

    def _authenticator(self) -> DataplaneAuthenticator | None:
        """Token admission, None when `dataplane_auth` is none; the signing keys are the state directory's."""
        if self.settings.dataplane_auth == "none":
            return None
        auth: DataplaneAuthenticator | None = self.__dict__.get("_dp_auth")
        if auth is None:
            keys = SigningKeys.open(self.settings.state_dir, rotate_missing=self.settings.rotate_missing_keys)
            auth = self._dp_auth = DataplaneAuthenticator(keys)
            lost = (
                [
                    f"signing key {', '.join(keys.lost)} was lost and replaced at start ({ROTATE_FLAG}): the tokens it signed are "
                    "refused; give those proxies new tokens (`reconciler token issue`)"
                ]
                if keys.lost
                else []
            )
            for what in lost:
                log.warning("lost key replaced", extra={"what": what})

            def lockouts() -> list[Lockout]:  # a key file that breaks later keeps its tokens out
                return [Lockout("KeysRotated", what) for what in lost] + [Lockout("SigningKeyUnusable", why) for why in keys.unusable()]

            self.store.lockouts.append(lockouts)
        return auth

    def _recheck_streams(self, attempt: Attempt) -> None:
        """After a revision is applied, close the streams it no longer admits: a token it
        revokes, or a tag-bound token whose Dataplane's tags changed."""
        auth = self._authenticator()
        if auth is None or attempt.outcome != "applied":
            return
        auth.use(self.store.applied.snapshot if self.store.applied else None)
        for call in self._stream_guard().admitted():
            refused = auth.recheck(call, self.store.registered.get(call.node_id))
            if refused is not None:
                call.close(*refused)

    async def stop(self) -> None:
        self._stopping.set()
        self.xds_serving = False
        if self._renewal is not None:
            self._renewal.cancel()
        self._watch.wake.set()
        if self._watch.task is not None:
            self._watch.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch.task
        if self._http is not None:
            await self._http.stop()
        if self._grpc is not None:
            await self._grpc.stop(grace=0.5)

    async def run_forever(self) -> None:
        try:  # a start that fails half way stops what it started (the gRPC server) too
            await self.start()
            await self._stopping.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        self._stopping.set()

    # -- repository ---------------------------------------------------------------------
    def _open_repository(self) -> pygit2.Repository:
        if not self.remote:
            found = pygit2.discover_repository(self.settings.repo)
            if found is None:
                raise SourceError(f"{self.settings.repo}: not a git repository")
            return pygit2.Repository(found)
        s = self.settings
        if s.git_known_hosts:
            use_known_hosts(s.git_known_hosts, Path(s.state_dir) / "ssh-home")
        if s.git_ca_file:
            pygit2.settings.set_ssl_cert_locations(os.path.abspath(s.git_ca_file), None)
        mirror = Path(s.state_dir) / "mirror.git"
        try:
            if mirror.exists():
                repo = pygit2.Repository(str(mirror))
                if repo.remotes["origin"].url != s.repo:
                    repo.remotes.set_url("origin", s.repo)
            else:  # cloned aside, then renamed: a clone cut short never looks like a mirror
                partial = mirror.with_name(f"mirror.git.partial-{os.getpid()}")
                shutil.rmtree(partial, ignore_errors=True)
                try:
                    pygit2.clone_repository(s.repo, str(partial), bare=True, callbacks=make_callbacks(self.credentials))
                    partial.rename(mirror)
                finally:
                    shutil.rmtree(partial, ignore_errors=True)
                repo = pygit2.Repository(str(mirror))
        except (pygit2.GitError, KeyError, ValueError) as e:
            raise SourceError(f"cannot mirror {self._redact(s.repo)}: {self._redact(str(e))}") from None
        self._last_fetch = time.monotonic()
        return repo

    def _redact(self, text: str) -> str:
        return redact(text, self.credentials.secrets if self.credentials else ())

    def _fetch(self) -> None:
        assert self.repo is not None
        if self.remote:
            branch = self.settings.branch
            self.repo.remotes["origin"].fetch([f"+refs/heads/{branch}:refs/heads/{branch}"], callbacks=make_callbacks(self.credentials))

    def _ref(self, name: str) -> str | None:
        assert self.repo is not None
        try:
            return str(self.repo.references[name].peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.GitError):
            return None

    # -- reconcile ----------------------------------------------------------------------
    async def reconcile(self, reason: str, *, fetch: bool = True) -> Attempt:
        """Fetch (a remote, when `fetch`), then reconcile the tracked branch, or the pin, now.

        While pinned, the branch head is validated once and recorded as held (or rejected).
        """
        fetching = self.remote and fetch
        try:
            if fetching:
                await asyncio.to_thread(self._fetch)
                self._last_fetch = time.monotonic()
                self.store.fetch_error = None
            pin = self._ref(PIN_REF)
            head = self._ref(f"refs/heads/{self.settings.branch}")
            if pin is None and head is None:
                raise SourceError(f"branch {self.settings.branch!r} not found in {self._redact(self.settings.repo)}")
        except (SourceError, pygit2.GitError, KeyError, OSError) as e:
            message = self._redact(f"{'fetch' if fetching else 'cannot read repository'}: {e}")
            if fetching:
                self.store.fetch_error = f"{message}; retrying in {self.settings.fetch_interval:g}s"
            last = self.store.last_attempt
            attempt = Attempt(
                last.revision if last else "", "failed", message, cause="GitOperationFailed" if fetching else "", trigger=reason
            )
            self.store.record(attempt)
            self.metrics.inc("reconciler_reconciles_total", outcome="failed")
            log.warning("repository not read", extra={"error": message, "reason": reason})
            return attempt
        self.store.pin = pin
        self.store.recovered()
        if pin is None:
            assert head is not None
            self._held.clear()
            return await self._reconcile_to(head, reason)
        attempt = await self._reconcile_to(pin, reason, pinned=True)
        if head is not None and head != pin:
            await self._hold(head, pin, reason)
        return attempt

    def _target(self) -> str:
        pinned = self._ref(PIN_REF)
        if pinned is not None:
            return pinned
        head = self._ref(f"refs/heads/{self.settings.branch}")
        if head is None:
            raise SourceError(f"branch {self.settings.branch!r} not found in {self._redact(self.settings.repo)}")
        return head

    async def _judge(self, revision: str, started: float, trigger: str) -> tuple[Attempt | None, Any]:
        """Read, verify the signature of and validate one commit: (a rejection or None, the evaluation).

        A bug hit while loading or validating it is its rejection (cause InternalError); only a
        commit that cannot be read raises (SourceError and git or file errors).
        """
        assert self.engine is not None and self.repo is not None
        try:
            evaluation = await asyncio.to_thread(self.engine.evaluate, revision)
        except InternalError as e:
            return _internal_error(revision, e.message, started, trigger), None
        if self.signatures.enabled:
            verdict = await asyncio.to_thread(verify_commit, self.repo, evaluation.revision, self.signatures)
            if not verdict.trusted:
                problem = Problem(None, None, None, "", verdict.message)
                return Attempt(
                    evaluation.revision,
                    "rejected",
                    f"signature verification failed: {verdict.message}",
                    (problem,),
                    duration=time.perf_counter() - started,
                    cause="VerificationError",
                    trigger=trigger,
                ), evaluation
        if not evaluation.report.valid:
            errors = evaluation.report.errors
            return Attempt(
                evaluation.revision,
                "rejected",
                f"validation failed: {len(errors)} error{'s' if len(errors) != 1 else ''}; first: {errors[0].render()}",
                errors,
                duration=time.perf_counter() - started,
                trigger=trigger,
            ), evaluation
        return None, evaluation

    async def _reconcile_to(self, revision: str, reason: str, *, pinned: bool = False) -> Attempt:
        assert self.engine is not None
        async with self._lock:
            applied = self.store.applied
            last = self.store.last_attempt
            if applied is not None and applied.revision == revision:
                return Attempt(revision, "unchanged", "already applied")
            refused = self._refused.get(revision)
            if refused is not None:
                self._remember(refused)
                return refused
            if last is not None and last.revision == revision and last.outcome == "rejected":
                return last
            started = time.perf_counter()
            self.store.reconciling = True
            ref_update: tuple[str, str, str] | None = None
            try:
                rejection, evaluation = await self._judge(revision, started, reason)
                if rejection is not None:
                    raise _Rejected(rejection)
                try:
                    build = await asyncio.to_thread(self.engine.build, evaluation.snapshot, list(self.store.registered.values()))
                except CaError as e:
                    attempt = Attempt(
                        evaluation.revision,
                        "rejected",
                        f"mTLS: {e}",
                        (Problem(None, None, None, "", f"mTLS: {e}"),),
                        duration=time.perf_counter() - started,
                        trigger=reason,
                    )
                    raise _Rejected(attempt) from None
                except InternalError as e:
                    raise _Rejected(_internal_error(evaluation.revision, e.message, started, reason)) from None
                rolled_back = await self._rolled_back(applied.revision, evaluation.revision) if pinned and applied is not None else None
                # From here to recording the attempt nothing awaits: a status read in between
                # would see the new revision with the old conditions.
                self._publish(build, evaluation.revision)
                self.store.apply(Applied(evaluation.revision, evaluation.snapshot, build.model, time.time(), _shapes(build)))
                how = f"pinned by refs/reconciler/pin, {reason}" if pinned else reason
                ref_update = (APPLIED_REF, evaluation.revision, f"reconciler: applied {evaluation.revision[:12]} ({how})")
                if rolled_back is not None:
                    self._record(rolled_back)
                    self._held[rolled_back.revision] = rolled_back  # as the head while pinned, it stays "rolled back"
                attempt = Attempt(
                    evaluation.revision,
                    "applied",
                    f"Applied revision: {revision_string(self.settings.branch, evaluation.revision)}",
                    evaluation.report.warnings,
                    duration=time.perf_counter() - started,
                    trigger=reason,
                )
                self._check_accepted()
            except _Rejected as rejected:
                attempt = rejected.attempt
            except (SourceError, pygit2.GitError, KeyError, ValueError, OSError, SignatureSetupError) as e:
                attempt = Attempt(
                    revision, "failed", f"reconcile failed: {self._redact(str(e))}", duration=time.perf_counter() - started, trigger=reason
                )
            except Exception as e:  # a bug anywhere else in here: recorded once as this commit's rejection
                log.debug("internal error", exc_info=e, extra={"revision": revision[:12]})
                attempt = _internal_error(revision, describe_bug(e, f"reconciling {revision[:12]}"), started, reason)
            finally:
                self.store.reconciling = False
            self._record(attempt)
            if ref_update is not None:
                await asyncio.to_thread(self._write_ref, *ref_update)
            self.metrics.inc("reconciler_reconciles_total", outcome=attempt.outcome)
            self.metrics.observe("reconciler_reconcile_duration_seconds", attempt.duration)
            log.info(
                "reconciled",
                extra={"revision": revision[:12], "outcome": attempt.outcome, "reason": reason, "ms": round(attempt.duration * 1000, 1)},
            )
            for listener in list(self.listeners):
                listener(attempt)
            return attempt

    def _record(self, attempt: Attempt) -> None:
        """Into the store, and for a commit's outcome into the history log."""
        self.store.record(attempt)
        if attempt.revision and attempt.outcome != "unchanged":
            self.history.append(_record_of(attempt, self.settings.branch))

    def _remember(self, attempt: Attempt) -> None:
        """Show a verdict from before a restart in the status, once (not logged again)."""
        if self.store.last_attempt is not attempt and attempt not in self.store.history:
            self.store.record(attempt)

    async def _rolled_back(self, previous: str, now: str) -> Attempt | None:
        """A pin moves serving from `previous` to `now`: unless `now` is newer, `previous` is rolled back."""
        assert self.repo is not None
        if previous == now:
            return None
        try:
            newer = await asyncio.to_thread(self.repo.descendant_of, now, previous)
        except (pygit2.GitError, KeyError, ValueError):
            newer = False
        if newer:
            return None
        return Attempt(
            previous,
            "rolled-back",
            f"serving moved back to {revision_string(self.settings.branch, now)} by refs/reconciler/pin",
            trigger="rollback",
            to=now,
        )

    async def _hold(self, head: str, pin: str, reason: str) -> Attempt:
        """Validate the branch head while pinned: recorded as held (valid) or rejected, not applied."""
        known = self._held.get(head)
        if known is not None:
            self._remember(known)
            return known
        async with self._lock:
            started = time.perf_counter()
            try:
                rejection, _ = await self._judge(head, started, reason)
            except (SourceError, pygit2.GitError, KeyError, ValueError, OSError, SignatureSetupError) as e:
                rejection = Attempt(head, "failed", f"cannot validate: {self._redact(str(e))}", trigger=reason)
            except Exception as e:
                log.debug("internal error", exc_info=e, extra={"revision": head[:12]})
                rejection = _internal_error(head, describe_bug(e, f"validating {head[:12]}"), started, reason)
            attempt = rejection or Attempt(
                head,
                "held",
                f"valid; not applied: serving is pinned to {revision_string(self.settings.branch, pin)}",
                duration=time.perf_counter() - started,
                trigger=reason,
            )
            self._held[head] = attempt
            self._record(attempt)
            log.info("held while pinned", extra={"revision": head[:12], "outcome": attempt.outcome, "pin": pin[:12]})
            return attempt

    def _publish(self, build: Build, revision: str) -> None:
        assert self.engine is not None
        for node_id, resources in build.changed.items():
            self.cache.set(node_id, resources, revision)
        for node_id in build.removed:
            self.cache.remove(node_id)
        self.engine.commit(build)
        self._rebuild_failure = None
        loop = asyncio.get_running_loop()
        loop.call_later(2.0, _release_free_memory)
        self._schedule_renewal(loop)

    def _schedule_renewal(self, loop: asyncio.AbstractEventLoop) -> None:
        """Rebuild when the first proxy certificate is due, so it is replaced before it expires."""
        assert self.engine is not None
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None
        when = self.engine.certs.next_renewal()
        if when is None or self._stopping.is_set():
            return
        delay = max(0.05, when - time.time())
        self._renewal = loop.call_later(delay, lambda: asyncio.ensure_future(self.rebuild("certificate renewal")))

    async def rebuild(self, reason: str) -> None:
        """Regenerate from the applied commit after a runtime change (a dataplane came or went)."""
        assert self.engine is not None
        async with self._lock:
            applied = self.store.applied
            if applied is None:
                return
            try:
                build = await asyncio.to_thread(self.engine.build, applied.snapshot, list(self.store.registered.values()))
            except (CaError, InternalError) as e:  # the proxies keep the config they have
                # ...but certificates due for renewal are not renewed: not Ready, and try again.
                self._rebuild_failure = f"rebuilding the applied revision ({reason}) failed: {e}; proxies keep their config, certificates are not renewed until it succeeds (retrying every {REBUILD_RETRY:g}s)"
                log.error("rebuild failed", extra={"reason": reason, "error": str(e), "retry_s": REBUILD_RETRY})
                if not self._stopping.is_set():
                    self._renewal = asyncio.get_running_loop().call_later(
                        REBUILD_RETRY, lambda: asyncio.ensure_future(self.rebuild(reason))
                    )
                return
            self._publish(build, applied.revision)
            self.store.apply(Applied(applied.revision, applied.snapshot, build.model, applied.applied_at, _shapes(build)))
            log.info("rebuilt", extra={"reason": reason, "changed": len(build.changed)})

    def _write_ref(self, name: str, revision: str, message: str) -> None:
        assert self.repo is not None
        write_ref(self.repo, name, revision, message)

    async def _watch_loop(self) -> None:
        """Reconcile when refs change on disk (watchfiles) or every poll interval; a remote is
        fetched every fetch interval, or at once when a webhook asks."""
        assert self.repo is not None
        git_dir = self.repo.path
        watcher = asyncio.create_task(self._file_events(git_dir))
        last_error = ""
        try:
            while not self._stopping.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._watch.wake.wait(), self.settings.poll_interval)
                self._watch.wake.clear()
                if self._stopping.is_set():
                    break
                fetch = self._fetch_requested or time.monotonic() - self._last_fetch >= self.settings.fetch_interval
                trigger, self._trigger, self._fetch_requested = self._trigger, "watch", False
                try:
                    await self.reconcile(trigger, fetch=fetch)
                    last_error = ""
                except Exception as e:  # the loop must survive anything; a commit's bugs are its rejection already
                    error = describe_bug(e, "reconciling")
                    if error != last_error:  # the traceback once, not at every poll
                        log.exception("reconcile loop error")
                    else:
                        log.debug("reconcile loop error", extra={"error": error})
                    last_error = error
        finally:
            watcher.cancel()

    async def _file_events(self, git_dir: str) -> None:
        try:
            from watchfiles import awatch
        except ImportError:  # polling still works
            return
        remote = self.remote

        def refs_only(_change: Any, path: str) -> bool:
            rel = os.path.relpath(path, git_dir)
            if remote:  # the mirror: only what people change in it (a pin); fetches are timed
                return rel.startswith(os.path.join("refs", "reconciler")) or rel == "packed-refs"
            return rel.startswith(("refs", "FETCH_HEAD")) or rel in ("packed-refs", "HEAD")

        try:
            async for _ in awatch(git_dir, watch_filter=refs_only, stop_event=self._stopping, debounce=50, step=20):
                self._watch.wake.set()
        except (OSError, RuntimeError):
            log.warning("file watching unavailable; polling", extra={"interval": self.settings.poll_interval})

    def wake(self, *, fetch: bool = False, trigger: str = "watch") -> None:
        """Ask the watch loop to check the repository now (with `fetch`, a remote too)."""
        if fetch:
            self._fetch_requested = True
        self._trigger = trigger
        self._watch.wake.set()

    # -- rollback, resume, rollback on NACK ---------------------------------------------
    async def rollback(self, rev: str, *, force: bool = False, requested_by: str = "") -> tuple[int, dict[str, Any]]:
        """Pin serving to `rev`: (HTTP status, body). Refused (nothing written) when `rev` is
        unknown (400), not on the branch's history without `force`, or invalid (409).

        `requested_by` (the admin token's id) goes into the pin's reflog; a forced pin of a
        commit off the branch is also logged as a warning with it."""
        assert self.engine is not None and self.repo is not None
        branch = self.settings.branch
        if self.remote:
            try:
                await asyncio.to_thread(self._fetch)
                self._last_fetch = time.monotonic()
            except (pygit2.GitError, OSError) as e:
                log.warning("fetch before rollback failed", extra={"error": self._redact(str(e))})
        try:
            sha = str(self.engine.source.resolve(rev).id)
        except SourceError as e:
            return 400, {"error": self._redact(str(e))}
        head = self._ref(f"refs/heads/{branch}")
        on_branch = head is not None and (sha == head or self.repo.descendant_of(head, sha))
        if not on_branch and not force:
            return 409, {
                "error": f"{sha[:12]} is not on the history of {branch}: refusing to pin it (rollback --force pins it anyway)",
                "revision": sha,
            }
        async with self._lock:
            try:
                rejection, _ = await self._judge(sha, time.perf_counter(), "rollback")
            except (SourceError, pygit2.GitError, KeyError, ValueError, OSError, SignatureSetupError) as e:
                return 409, {"error": f"refusing to pin {sha[:12]}: cannot read it: {self._redact(str(e))}", "revision": sha}
        if rejection is not None:
            return 409, {
                "error": f"refusing to pin {sha[:12]}: {rejection.message}",
                "revision": sha,
                "errors": [p.to_json() for p in rejection.errors],
            }
        served = self.store.applied.revision[:12] if self.store.applied else "nothing"
        who = f"api, token {requested_by}" if requested_by else "api"
        if not on_branch:
            who = f"forced off {branch}, {who}"
            log.warning(
                "forced rollback to a commit off the branch",
                extra={"revision": sha[:12], "branch": branch, "token_id": requested_by or "-"},
            )
        await asyncio.to_thread(self._write_ref, PIN_REF, sha, f"reconciler rollback: pin {sha[:12]} (serving {served}, {who})")
        attempt = await self.reconcile("rollback", fetch=False)
        if attempt.outcome == "unchanged" and self.store.applied is not None and self.store.applied.revision == sha:
            attempt = Attempt(sha, "applied", f"Applied revision: {revision_string(branch, sha)} (already served)", trigger="rollback")
        return 200, {"pinnedRevision": revision_string(branch, sha), **attempt.to_json(branch), "status": self.store.status()}

    async def resume(self) -> dict[str, Any]:
        """Delete the pin and follow the branch again."""
        assert self.repo is not None
        pin = self._ref(PIN_REF)
        if pin is not None:
            await asyncio.to_thread(delete_ref, self.repo, PIN_REF)
            log.info("resumed", extra={"unpinned": pin[:12]})
        attempt = await self.reconcile("resume")
        if attempt.outcome == "unchanged" and self.store.last_attempt is not None:
            attempt = self.store.last_attempt
        return {
            "unpinned": revision_string(self.settings.branch, pin),
            **attempt.to_json(self.settings.branch),
            "status": self.store.status(),
        }

    def _check_accepted(self, node_id: str | None = None) -> None:
        """rollback-on-nack: note the applied revision as accepted once every connected proxy
        with a config ACKed it. Called without `node_id` when the revision or the set of
        proxies changes (counts who still has to ACK), with it on each ACK or new config of
        that proxy (so an ACK costs O(1), not a scan of every proxy).

        With no proxy connected, only the first revision counts as accepted: a commit nobody
        has taken yet is not a safe way back.
        """
        applied = self.store.applied
        if not self.settings.rollback_on_nack or applied is None or self._accepted == applied.revision:
            return
        if node_id is None:
            proxies = [p for p in self.store.connected() if self.cache.fetch(p.node_id) is not None]
            if not proxies and self._accepted is not None:
                return
            self._awaiting_ack = {p.node_id for p in proxies if not p.synced(self._generation_of(p.node_id))}
        elif self.store.proxy(node_id).synced(self._generation_of(node_id)):
            self._awaiting_ack.discard(node_id)
        else:
            self._awaiting_ack.add(node_id)
            return
        if not self._awaiting_ack:
            self._accepted = applied.revision
            log.info("every proxy accepted", extra={"revision": applied.revision[:12]})

    def _proxy_nacked(self, revision: str) -> None:
        applied = self.store.applied
        if not self.settings.rollback_on_nack or applied is None or applied.revision != revision:
            return
        if revision == self._accepted or revision in self._refused or self.store.rolling_back is not None:
            return
        if self._accepted is None:
            log.warning(
                "proxies rejected the applied revision; no revision every proxy accepted to return to", extra={"revision": revision[:12]}
            )
            return
        # Said at once, so a client polling the status waits for the rollback, not a bare NACK.
        self.store.rolling_back = (revision, self._accepted)
        asyncio.ensure_future(self._rollback_after_nack(revision))

    async def _rollback_after_nack(self, bad: str) -> None:
        """Proxies rejected `bad`: serve the last revision every proxy accepted, and refuse `bad`."""
        try:
            await self._roll_back(bad)
        finally:
            self.store.rolling_back = None

    async def _roll_back(self, bad: str) -> None:
        assert self.engine is not None
        branch = self.settings.branch
        async with self._lock:
            applied = self.store.applied
            good = self._accepted
            if applied is None or applied.revision != bad or bad in self._refused:
                return
            nacks = [(p.node_id, t, " ".join(msg.split())) for p in self.store.proxies.values() for t, msg in p.rejected(bad)]
            if good is None or good == bad:
                return
            try:
                evaluation = await asyncio.to_thread(self.engine.evaluate, good)
                build = await asyncio.to_thread(self.engine.build, evaluation.snapshot, list(self.store.registered.values()))
            except (SourceError, pygit2.GitError, CaError, InternalError, KeyError, ValueError, OSError) as e:
                log.error("rollback after NACK failed", extra={"revision": good[:12], "error": str(e)})
                return
            self._publish(build, good)
            self.store.apply(Applied(good, evaluation.snapshot, build.model, time.time(), _shapes(build)))
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
            self._refused[bad] = refused
            self._record(back)
            self._record(refused)
            await asyncio.to_thread(
                self._write_ref, APPLIED_REF, good, f"reconciler: applied {good[:12]} (rollback-on-nack: proxies rejected {bad[:12]})"
            )
            self.metrics.inc("reconciler_reconciles_total", outcome="rejected-by-proxies")
            log.warning(
                "rolled back: proxies rejected the revision", extra={"rejected": bad[:12], "serving": good[:12], "nacks": len(nacks)}
            )
            for listener in list(self.listeners):
                listener(back)

    # -- runtime dataplanes ------------------------------------------------------------
    async def admit(self, node: base_pb2.Node, mode: str) -> str:
        node_id = str(node.id)
        mesh, name = split_node_id(node_id)
        call = current_call()
        auth = self._authenticator()
        claims = None
        if auth is not None:
            auth.use(self.store.applied.snapshot if self.store.applied else None)
            claims = auth.authenticate(node, call, mesh, name)
            auth.authorize(claims, mesh, name, check_tags=False)
        raw = node.metadata.fields.get(DATAPLANE_METADATA_KEY) if node.HasField("metadata") else None
        resource = (
            await asyncio.to_thread(registered_dataplane, node_id, raw, self.store.applied.model.meshes if self.store.applied else None)
            if raw is not None
            else None
        )
        if auth is not None and claims is not None:
            auth.authorize(claims, mesh, name, resource)
        if call is not None:
            call.node_id, call.claims = node_id, claims
        if resource is not None:
            previous = self.store.registered.get(node_id)
            self.store.registered[node_id] = resource
            if previous != resource:
                await self.rebuild(f"registered {node_id}")
        self._streams[node_id] = self._streams.get(node_id, 0) + 1
        status = self.store.proxy(node_id)
        status.connected, status.mode, status.connected_at = True, mode, time.time()
        status.streams = self._streams[node_id]
        return node_id

    async def release(self, node_id: str) -> None:
        count = self._streams.get(node_id, 1) - 1
        if count > 0:
            self._streams[node_id] = count
            self.store.proxy(node_id).streams = count
            return
        self._streams.pop(node_id, None)
        status = self.store.proxy(node_id)
        status.connected, status.streams = False, 0
        self._check_accepted()
        if self.store.registered.pop(node_id, None) is not None:
            await self.rebuild(f"unregistered {node_id}")

    # -- for the HTTP API (reconciler/api/routes.py) --------------------------------------
    def not_ready(self) -> list[str]:
        """Why proxies should not be sent here yet (`GET /readyz`); empty when a commit is
        applied and the xDS server is serving."""
        reasons = []
        if self.store.applied is None:
            last = self.store.last_attempt
            reasons.append("no commit applied yet" + (f": {last.message}" if last is not None and last.message else ""))
        if not self.xds_serving:
            reasons.append("the xDS server is not serving")
        return reasons

    async def branch_history(self, limit: int) -> dict[str, Any]:
        """The tracked branch's commits, newest first, with their outcomes (`GET /history`)."""
        assert self.repo is not None
        served = self.store.applied.revision if self.store.applied else None
        async with self._lock:  # the repository is read by one thread at a time
            return await asyncio.to_thread(
                branch_history, self.repo, self.settings.branch, self.history.read(), served=served, pinned=self.store.pin, limit=limit
            )

    @property
    def webhook_secret(self) -> bytes | None:
        return self._webhook_secret

    def _declare_metrics(self) -> None:
        m = self.metrics
        m.counter("reconciler_reconciles_total", "Reconcile attempts by outcome (applied, rejected, failed).")
        m.histogram("reconciler_reconcile_duration_seconds", "Time to load, validate, build and publish a commit.")
        m.counter("reconciler_xds_pushes_total", "xDS responses sent, by type.")
        m.counter("reconciler_xds_acks_total", "xDS responses acknowledged by proxies, by type.")
        m.counter("reconciler_xds_nacks_total", "xDS responses rejected by proxies, by type.")
        m.counter("reconciler_webhooks_total", "POST /hooks/git requests, by result (accepted, unauthorized, ignored, ping).")
        m.gauge("reconciler_connected_proxies", "Proxies with an open xDS stream.", lambda: [({}, float(len(self.store.connected())))])
        m.gauge(
            "reconciler_applied_info",
            "The applied revision (value 1).",
            lambda: [({"revision": self.store.applied.revision}, 1.0)] if self.store.applied else [],
        )


def _release_free_memory() -> None:
    """Hand memory freed after a reconcile back to the OS (glibc keeps it otherwise)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


def _record_of(attempt: Attempt, branch: str) -> Record:
    return Record(
        attempt.revision,
        attempt.outcome,
        attempt.message,
        attempt.at,
        branch,
        tuple(p.to_json() for p in attempt.errors if p.is_error),
        attempt.trigger,
        attempt.cause,
        attempt.to,
        attempt.duration,
    )


def _attempt_of(record: Record) -> Attempt:
    errors = tuple(Problem(None, None, None, "", str(e.get("message", ""))) for e in record.errors)
    return Attempt(
        record.revision, record.outcome, record.message, errors, record.time, record.duration, record.cause, record.trigger, record.to
    )  # type: ignore[arg-type]


def _internal_error(revision: str, message: str, started: float, trigger: str) -> Attempt:
    """A commit that hit a bug: rejected (terminal for that revision, not retried every poll)."""
    return Attempt(
        revision,
        "rejected",
        message,
        (Problem(None, None, None, "", message),),
        duration=time.perf_counter() - started,
        cause="InternalError",
        trigger=trigger,
    )


class _Rejected(Exception):
    def __init__(self, attempt: Attempt) -> None:
        super().__init__(attempt.message)
        self.attempt = attempt


class _Callbacks:
    """The xDS server's view of the control plane: admission and ACK/NACK bookkeeping."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    async def on_open(self, node: base_pb2.Node, mode: str) -> str:
        return await self.cp.admit(node, mode)

    def on_close(self, node_id: str, mode: str) -> None:
        asyncio.ensure_future(self.cp.release(node_id))

    def on_sent(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        t = self.cp.store.proxy(node_id).type(type_url)
        t.sent_version, t.sent_revision = version, revision
        t.pushes += 1
        self.cp.metrics.inc("reconciler_xds_pushes_total", type=SHORT_NAMES.get(type_url, type_url))

    def on_ack(self, node_id: str, type_url: str, version: str, revision: str) -> None:
        t = self.cp.store.proxy(node_id).type(type_url)
        t.acked_version, t.acked_revision = version, revision
        self.cp.metrics.inc("reconciler_xds_acks_total", type=SHORT_NAMES.get(type_url, type_url))
        self.cp._check_accepted(node_id)

    def on_config(self, node_id: str, config: NodeConfig) -> None:
        status = self.cp.store.proxy(node_id)
        status.revision, status.generation = config.revision, config.generation
        self.cp._check_accepted(node_id)

    def on_nack(self, node_id: str, type_url: str, version: str, revision: str, message: str) -> None:
        t = self.cp.store.proxy(node_id).type(type_url)
        t.nacked_revision, t.nack_message = revision, message
        t.nacks += 1
        self.cp.metrics.inc("reconciler_xds_nacks_total", type=SHORT_NAMES.get(type_url, type_url))
        self.cp._proxy_nacked(revision)


def _shapes(build: Build) -> dict[str, ShapeChoice]:
    return {node: view.shape for node, view in build.views.items()}
