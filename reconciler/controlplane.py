"""`reconciler serve`: watch the repository, reconcile each new commit, serve xDS and the API.

The I/O end of the pipeline. It owns the event loop objects (store, cache, gRPC and HTTP
servers, the git watcher); the CPU-heavy work (`Engine`) runs in a worker thread, one
reconcile at a time, and its results are applied back in the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pygit2
from envoy.config.core.v3 import base_pb2
from google.protobuf import json_format

from reconciler.api.http import HttpServer, Request, Response
from reconciler.ca.authority import CaError
from reconciler.ca.provider import CertificateProvider
from reconciler.ca.store import CaStore
from reconciler.api.metrics import Metrics
from reconciler.errors import Problem
from reconciler.model import Resource
from reconciler.reconcile import Build, Engine
from reconciler.source.git import GitSource, SourceError
from reconciler.source.loader import load_file
from reconciler.store import Applied, Attempt, Store, revision_string
from reconciler.validate import validate_resource
from reconciler.xds.cache import ConfigCache, NodeConfig
from reconciler.xds.resources import SHORT_NAMES
from reconciler.xds.server import AdsServer, XdsRejected, add_ads_server
from reconciler.ca.tokens import SigningKeys
from reconciler.ca.xds_tls import ca_cert_path, default_names, load_or_create
from reconciler.xds.security import DataplaneAuthenticator, StreamGuard, current_call, server_credentials

__all__ = ["ServeSettings", "ControlPlane", "APPLIED_REF", "PIN_REF", "DATAPLANE_METADATA_KEY"]

log = logging.getLogger(__name__)

APPLIED_REF = "refs/reconciler/applied"
PIN_REF = "refs/reconciler/pin"
DATAPLANE_METADATA_KEY = "dataplane.resource"
"""Node metadata field carrying the Dataplane of a proxy not declared in git (as kuma-dp does)."""


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


def _is_remote(repo: str) -> bool:
    """A URL (https://, ssh://, file://) or scp-like `git@host:path`; an existing path is local."""
    if os.path.exists(repo):
        return False
    return "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo) is not None


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
        self._http: HttpServer | None = None
        self._streams: dict[str, int] = {}
        self._renewal: asyncio.TimerHandle | None = None
        self.repo: pygit2.Repository | None = None
        self.engine: Engine | None = None
        self.remote = _is_remote(settings.repo)
        self.xds_port = 0
        self.api_port = 0
        self.listeners: list[Callable[[Attempt], None]] = []
        self._declare_metrics()

    def _generation_of(self, node_id: str) -> int | None:
        config = self.cache.fetch(node_id)
        return config.generation if config else None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        Path(self.settings.state_dir).mkdir(parents=True, exist_ok=True)
        self.repo = await asyncio.to_thread(self._open_repository)
        self.engine = self._make_engine()
        self._grpc, self.xds_port = self._make_grpc_server()
        self._http = HttpServer(self._routes(), self._prefix_routes())
        # Resume what was served before a restart, then catch up with the branch.
        previous = self._ref(APPLIED_REF)
        if previous is not None:
            await self._reconcile_to(previous, "resume")
        await self.reconcile("start")
        await self._grpc.start()
        self.api_port = await self._http.start(self.settings.address, self.settings.api_port)
        self._watch.task = asyncio.create_task(self._watch_loop())
        log.info("serving", extra={"xds": f"{self.settings.address}:{self.xds_port}", "api": f"{self.settings.address}:{self.api_port}"})

    def _make_engine(self) -> Engine:
        assert self.repo is not None
        return Engine(GitSource(self.repo, self.settings.path), CertificateProvider(CaStore(self.settings.state_dir)))

    def _make_grpc_server(self) -> tuple[grpc.aio.Server, int]:
        """The xDS gRPC server with ADS registered, bound to the xDS port: over TLS unless
        `xds_tls` is none, each stream behind the guard that admission and revocation use."""
        guard = self._stream_guard()
        self._authenticator()  # make or load the signing key now, not on the first proxy
        self.listeners.append(self._recheck_streams)
        server = grpc.aio.server(
            interceptors=[guard],
            options=[("grpc.keepalive_time_ms", 30_000), ("grpc.http2.min_ping_interval_without_data_ms", 10_000)],
        )
        add_ads_server(server, AdsServer(self.cache, _Callbacks(self)))
        address = f"{self.settings.address}:{self.settings.xds_port}"
        if self.settings.xds_tls == "none":
            log.warning("xds served without tls", extra={"address": address})
            return server, server.add_insecure_port(address)
        names = default_names(self.settings.address, self.settings.xds_tls_names)
        state_dir = self.settings.state_dir
        port = server.add_secure_port(address, server_credentials(lambda: load_or_create(state_dir, names)))
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
            auth = self._dp_auth = DataplaneAuthenticator(SigningKeys.open(self.settings.state_dir))
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
        await self.start()
        try:
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
        mirror = Path(self.settings.state_dir) / "mirror.git"
        if mirror.exists():
            repo = pygit2.Repository(str(mirror))
        else:
            repo = pygit2.clone_repository(self.settings.repo, str(mirror), bare=True)
        return repo

    def _fetch(self) -> None:
        assert self.repo is not None
        if self.remote:
            self.repo.remotes["origin"].fetch([f"+refs/heads/{self.settings.branch}:refs/heads/{self.settings.branch}"])

    def _ref(self, name: str) -> str | None:
        assert self.repo is not None
        try:
            return str(self.repo.references[name].peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.GitError):
            return None

    def _target(self) -> str:
        pinned = self._ref(PIN_REF)
        if pinned is not None:
            return pinned
        head = self._ref(f"refs/heads/{self.settings.branch}")
        if head is None:
            raise SourceError(f"branch {self.settings.branch!r} not found in {self.settings.repo}")
        return head

    # -- reconcile ----------------------------------------------------------------------
    async def reconcile(self, reason: str) -> Attempt:
        """Fetch (remote), then reconcile the tracked branch (or the pin) now."""
        try:
            await asyncio.to_thread(self._fetch)
            target = self._target()
        except (SourceError, pygit2.GitError, KeyError, OSError) as e:
            attempt = Attempt(self.store.last_attempt.revision if self.store.last_attempt else "", "failed", f"cannot read repository: {e}")
            self.store.record(attempt)
            self.metrics.inc("reconciler_reconciles_total", outcome="failed")
            return attempt
        return await self._reconcile_to(target, reason)

    async def _reconcile_to(self, revision: str, reason: str) -> Attempt:
        assert self.engine is not None
        async with self._lock:
            applied = self.store.applied
            last = self.store.last_attempt
            if applied is not None and applied.revision == revision:
                return Attempt(revision, "unchanged", "already applied")
            if last is not None and last.revision == revision and last.outcome == "rejected":
                return last
            started = time.perf_counter()
            self.store.reconciling = True
            try:
                evaluation = await asyncio.to_thread(self.engine.evaluate, revision)
                if not evaluation.report.valid:
                    errors = evaluation.report.errors
                    attempt = Attempt(
                        evaluation.revision,
                        "rejected",
                        f"validation failed: {len(errors)} error{'s' if len(errors) != 1 else ''}; first: {errors[0].render()}",
                        errors,
                        duration=time.perf_counter() - started,
                    )
                else:
                    try:
                        build = await asyncio.to_thread(self.engine.build, evaluation.snapshot, list(self.store.registered.values()))
                    except CaError as e:
                        attempt = Attempt(evaluation.revision, "rejected", f"mTLS: {e}", (Problem(None, None, None, "", f"mTLS: {e}"),), duration=time.perf_counter() - started)
                        raise _Rejected(attempt) from None
                    self._publish(build, evaluation.revision)
                    self.store.apply(Applied(evaluation.revision, evaluation.snapshot, build.model, time.time()))
                    await asyncio.to_thread(self._write_ref, APPLIED_REF, evaluation.revision, f"reconciler: applied ({reason})")
                    attempt = Attempt(
                        evaluation.revision,
                        "applied",
                        f"Applied revision: {revision_string(self.settings.branch, evaluation.revision)}",
                        evaluation.report.warnings,
                        duration=time.perf_counter() - started,
                    )
            except _Rejected as rejected:
                attempt = rejected.attempt
            except (SourceError, pygit2.GitError, KeyError, ValueError, OSError) as e:
                attempt = Attempt(revision, "failed", f"reconcile failed: {e}", duration=time.perf_counter() - started)
            finally:
                self.store.reconciling = False
            self.store.record(attempt)
            self.metrics.inc("reconciler_reconciles_total", outcome=attempt.outcome)
            self.metrics.observe("reconciler_reconcile_duration_seconds", attempt.duration)
            log.info(
                "reconciled",
                extra={"revision": revision[:12], "outcome": attempt.outcome, "reason": reason, "ms": round(attempt.duration * 1000, 1)},
            )
            for listener in list(self.listeners):
                listener(attempt)
            return attempt

    def _publish(self, build: Build, revision: str) -> None:
        assert self.engine is not None
        for node_id, resources in build.changed.items():
            self.cache.set(node_id, resources, revision)
        for node_id in build.removed:
            self.cache.remove(node_id)
        self.engine.commit(build)
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
            except CaError as e:
                log.error("rebuild failed", extra={"reason": reason, "error": str(e)})
                return
            self._publish(build, applied.revision)
            self.store.apply(Applied(applied.revision, applied.snapshot, build.model, applied.applied_at))
            log.info("rebuilt", extra={"reason": reason, "changed": len(build.changed)})

    def _write_ref(self, name: str, revision: str, message: str) -> None:
        assert self.repo is not None
        self.repo.references.create(name, pygit2.Oid(hex=revision), force=True)

    async def _watch_loop(self) -> None:
        """Reconcile when refs change on disk (watchfiles) or every poll interval."""
        assert self.repo is not None
        git_dir = self.repo.path
        watcher = None if self.remote else asyncio.create_task(self._file_events(git_dir))
        try:
            while not self._stopping.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._watch.wake.wait(), self.settings.poll_interval)
                self._watch.wake.clear()
                if self._stopping.is_set():
                    break
                try:
                    await self.reconcile("watch")
                except Exception:  # the loop must survive anything a commit can do
                    log.exception("reconcile loop error")
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _file_events(self, git_dir: str) -> None:
        try:
            from watchfiles import awatch
        except ImportError:  # polling still works
            return

        def refs_only(_change: Any, path: str) -> bool:
            rel = os.path.relpath(path, git_dir)
            return rel.startswith("refs") or rel in ("packed-refs", "HEAD") or rel.startswith("FETCH_HEAD")

        try:
            async for _ in awatch(git_dir, watch_filter=refs_only, stop_event=self._stopping, debounce=50, step=20):
                self._watch.wake.set()
        except (OSError, RuntimeError):
            log.warning("file watching unavailable; polling", extra={"interval": self.settings.poll_interval})

    def wake(self) -> None:
        """Ask the watch loop to check the repository now (webhooks, CLI)."""
        self._watch.wake.set()

    # -- runtime dataplanes ------------------------------------------------------------
    async def admit(self, node: base_pb2.Node, mode: str) -> str:
        node_id = str(node.id)
        mesh, _, name = node_id.partition(".")
        if not mesh or not name:
            raise XdsRejected(grpc.StatusCode.INVALID_ARGUMENT, f'node id "{node_id}" must be <mesh>.<dataplane name>')
        call = current_call()
        auth = self._authenticator()
        claims = None
        if auth is not None:
            auth.use(self.store.applied.snapshot if self.store.applied else None)
            claims = auth.authenticate(node, call, mesh, name)
            auth.authorize(claims, mesh, name, check_tags=False)
        raw = node.metadata.fields.get(DATAPLANE_METADATA_KEY) if node.HasField("metadata") else None
        resource = self._registered_dataplane(node_id, mesh, name, raw) if raw is not None else None
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

    def _registered_dataplane(self, node_id: str, mesh: str, name: str, raw: Any) -> Resource:
        text = raw.string_value if raw.HasField("string_value") else json.dumps(json_format.MessageToDict(raw.struct_value))
        result = load_file(f"<node {node_id} metadata>", text.encode())
        problems: list[Problem] = list(result.problems)
        resources = [r for r in result.resources if r.type == "Dataplane"]
        if not problems and len(resources) != 1:
            raise XdsRejected(grpc.StatusCode.INVALID_ARGUMENT, f"{DATAPLANE_METADATA_KEY} must hold exactly one Dataplane")
        if resources:
            r = resources[0]
            if (r.mesh, r.name) != (mesh, name):
                raise XdsRejected(grpc.StatusCode.INVALID_ARGUMENT, f"node id {node_id} does not match the Dataplane {r.mesh}.{r.name} in its metadata")
            problems += [p for p in validate_resource(r) if p.is_error]
            applied = self.store.applied
            if applied is not None and mesh not in applied.model.meshes:
                problems.append(Problem(None, None, r.key, "/mesh", f'mesh "{mesh}" does not exist in the applied revision'))
        if problems:
            raise XdsRejected(grpc.StatusCode.INVALID_ARGUMENT, "invalid Dataplane in node metadata:\n" + "\n".join(p.render() for p in problems))
        return resources[0]

    async def release(self, node_id: str) -> None:
        count = self._streams.get(node_id, 1) - 1
        if count > 0:
            self._streams[node_id] = count
            self.store.proxy(node_id).streams = count
            return
        self._streams.pop(node_id, None)
        status = self.store.proxy(node_id)
        status.connected, status.streams = False, 0
        if self.store.registered.pop(node_id, None) is not None:
            await self.rebuild(f"unregistered {node_id}")

    # -- API ------------------------------------------------------------------------------
    def _routes(self) -> dict[tuple[str, str], Any]:
        async def status(_: Request) -> Response:
            return Response.json(self.store.status())

        async def dataplanes(_: Request) -> Response:
            return Response.json(self.store.dataplanes())

        async def metrics(_: Request) -> Response:
            return Response.text(self.metrics.render(), content_type="text/plain; version=0.0.4")

        async def reconcile(request: Request) -> Response:
            attempt = await self.reconcile("api")
            if attempt.outcome == "unchanged" and self.store.last_attempt is not None:
                attempt = self.store.last_attempt
            return Response.json(attempt.to_json(self.settings.branch) | {"status": self.store.status()})

        return {
            ("GET", "/status"): status,
            ("GET", "/dataplanes"): dataplanes,
            ("GET", "/metrics"): metrics,
            ("POST", "/reconcile"): reconcile,
        }

    def _prefix_routes(self) -> dict[tuple[str, str], Any]:
        async def config(request: Request) -> Response:
            node_id = request.path.removeprefix("/config/").replace("/", ".", 1)
            cfg = self.cache.fetch(node_id)
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
            for dp in self.store.dataplanes():
                if dp["node"] == node_id:
                    return Response.json(dp)
            return Response.error(404, f"no dataplane {node_id}")

        return {("GET", "/config/"): config, ("GET", "/dataplanes/"): dataplane}

    def _declare_metrics(self) -> None:
        m = self.metrics
        m.counter("reconciler_reconciles_total", "Reconcile attempts by outcome (applied, rejected, failed).")
        m.histogram("reconciler_reconcile_duration_seconds", "Time to load, validate, build and publish a commit.")
        m.counter("reconciler_xds_pushes_total", "xDS responses sent, by type.")
        m.counter("reconciler_xds_acks_total", "xDS responses acknowledged by proxies, by type.")
        m.counter("reconciler_xds_nacks_total", "xDS responses rejected by proxies, by type.")
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

    def on_config(self, node_id: str, config: NodeConfig) -> None:
        status = self.cp.store.proxy(node_id)
        status.revision, status.generation = config.revision, config.generation

    def on_nack(self, node_id: str, type_url: str, version: str, revision: str, message: str) -> None:
        t = self.cp.store.proxy(node_id).type(type_url)
        t.nacked_revision, t.nack_message = revision, message
        t.nacks += 1
        self.cp.metrics.inc("reconciler_xds_nacks_total", type=SHORT_NAMES.get(type_url, type_url))
