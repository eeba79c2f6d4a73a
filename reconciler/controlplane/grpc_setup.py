"""The xDS side's setup: token admission of proxies and the gRPC server that serves ADS and HDS.

`Admission` owns the dataplane-token authenticator (its signing keys live in the state
directory) and the stream guard; `make_grpc_server` binds the port, over TLS unless the
settings say `xds_tls: none`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc

from reconciler.ca.keys_dir import XDS_CA_CERT
from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.statefiles import ROTATE_FLAG
from reconciler.ca.xds_tls import ca_cert_path, default_names, load_or_create
from reconciler.controlplane.settings import ServeSettings, SetupError
from reconciler.ports import listen_error
from reconciler.store import Attempt, Lockout, Store
from reconciler.xds.admission import AuthorizedWatcher, DataplaneAuthenticator
from reconciler.xds.cache import ConfigCache
from reconciler.xds.hds import HdsServer, HealthCallbacks, add_hds_server
from reconciler.xds.security import StreamGuard, XdsCall, server_credentials
from reconciler.xds.server import AdsServer, StreamCallbacks, add_ads_server

__all__ = ["Admission", "make_grpc_server", "CONNECT_STORM_OPTIONS", "MEMORY_OPTIONS"]

CONNECT_STORM_OPTIONS = [
    ("grpc.server.max_pending_requests", 1_000_000),
    ("grpc.server.max_pending_requests_hard_limit", 1_000_000),
    ("grpc.server_max_unrequested_time_in_server", 3600),
]
"""gRPC core queues the streams that arrive while the event loop is busy (the Python server
takes them one at a time); past 1,000 queued it starts refusing them at random, past 3,000 it
refuses all, and it cancels any queued 30 s. A connect storm of thousands of proxies must be
queued, not refused: each stream is cheap once the loop gets to it."""

MEMORY_OPTIONS = [("grpc.enable_channelz", 0)]
"""gRPC core keeps channelz records (counters, a trace) for every connection; nothing here serves
the channelz service that would read them. Off, each connected proxy costs 0.5–0.9 KiB less
(bench/xds_memory.py, alternating runs). No other option lowers gRPC's per-connection memory:
read chunk sizes, HPACK table sizes, BDP probing, the stream window and the write buffer
leave it within 0.1 KiB."""

log = logging.getLogger("reconciler.controlplane")


class Admission:
    """Which proxies get a config: dataplane tokens checked when a stream opens, and again
    (`refusal`) before each config it gets and after each applied revision."""

    def __init__(self, settings: ServeSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.guard = StreamGuard()
        self._auth: DataplaneAuthenticator | None = None

    def authenticator(self) -> DataplaneAuthenticator | None:
        """Token admission, None when `dataplane_auth` is none; the signing keys are the state directory's."""
        if self.settings.dataplane_auth == "none":
            return None
        auth = self._auth
        if auth is None:
            keys_dir = self.settings.keys_dir
            keys = (
                SigningKeys.open_shared(keys_dir)
                if keys_dir
                else SigningKeys.open(self.settings.state_dir, rotate_missing=self.settings.rotate_missing_keys)
            )
            auth = self._auth = DataplaneAuthenticator(keys)
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

    def refusal(self, call: XdsCall) -> tuple[grpc.StatusCode, str] | None:
        # Checked before each config a stream gets: a commit or another stream's
        # registration may have changed which Dataplane is served to its node.
        auth = self.authenticator()
        if auth is None:
            return None
        auth.use(self.store.applied.snapshot if self.store.applied else None)
        return auth.recheck(call, self.store.registered.get(call.node_id))

    def recheck_streams(self, attempt: Attempt) -> None:
        """After a revision is applied, close the streams it no longer admits: a token it
        revokes, or a tag-bound token whose Dataplane's tags changed."""
        auth = self.authenticator()
        if auth is None or attempt.outcome != "applied":
            return
        auth.use(self.store.applied.snapshot if self.store.applied else None)
        for call in self.guard.admitted():
            refused = auth.recheck(call, self.store.registered.get(call.node_id))
            if refused is not None:
                call.close(*refused)


def make_grpc_server(
    settings: ServeSettings, admission: Admission, cache: ConfigCache, callbacks: StreamCallbacks, health: HealthCallbacks | None = None
) -> tuple[grpc.aio.Server, int]:
    """The xDS gRPC server with ADS (and HDS, given `health`) registered, bound to the xDS port:
    over TLS unless `xds_tls` is none, each stream behind the guard that admission and revocation use.

    The port is this process's alone: gRPC's default SO_REUSEPORT would let a second
    control plane (with another CA and other keys) share it and take half the proxies.
    A port in use is a SetupError naming it."""
    admission.authenticator()  # make or load the signing key now, not on the first proxy
    server = grpc.aio.server(
        interceptors=[admission.guard],
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.so_reuseport", 0),
            *CONNECT_STORM_OPTIONS,
            *MEMORY_OPTIONS,
        ],
    )
    ads = AdsServer(AuthorizedWatcher(cache, admission.refusal), callbacks, first_request_timeout=settings.xds_first_request_timeout)
    add_ads_server(server, ads)
    if health is not None and settings.hds.enabled:
        add_hds_server(
            server,
            HdsServer(health, refresh_interval=settings.hds.refresh_interval, first_request_timeout=settings.xds_first_request_timeout),
        )
    stop = server.stop

    async def stopping(grace: float | None) -> None:
        ads.stopping = True  # the streams it cancels end with "server shutdown" in the log
        await stop(grace)

    server.stop = stopping
    address = f"{settings.address}:{settings.xds_port}"
    in_use = listen_error(settings.address, settings.xds_port)
    if in_use is not None:
        raise SetupError(f"cannot serve xDS on {address}: {in_use}")
    try:
        if settings.xds_tls == "none":
            log.warning("xds served without tls", extra={"address": address})
            return server, server.add_insecure_port(address)
        names = default_names(settings.address, settings.xds_tls_names)
        state_dir, keys_dir = settings.state_dir, settings.keys_dir
        port = server.add_secure_port(address, server_credentials(lambda: load_or_create(state_dir, names, keys_dir=keys_dir)))
    except RuntimeError as e:  # taken between the check and the bind
        raise SetupError(f"cannot serve xDS on {address}: {e}") from None
    ca_cert = Path(keys_dir) / XDS_CA_CERT if keys_dir else ca_cert_path(state_dir)
    log.info("xds tls", extra={"ca_cert": str(ca_cert), "names": ",".join(names)})
    return server, port
