"""Who may hold an xDS stream: TLS for the gRPC server, dataplane-token admission, and a
guard that can close an admitted stream later (when its token is revoked).

- `server_credentials` serves the certificate of `reconciler.ca.xds_tls`, reissuing it from
  the same CA before it expires without a restart.
- `StreamGuard` is a grpc.aio interceptor around the ADS methods and HDS's stream. Each stream gets an
  `XdsCall`: its request metadata (kuma-dp sends the token as `authorization`), the identity
  admission gave it, and `close(code, message)` to end it with a status. The admission
  callback finds the call of the stream it is admitting with `current_call()`.
- Admission itself (tokens checked against the served Dataplane, and again before each new
  config) is reconciler.xds.admission.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from reconciler.ca.tokens import (
    DataplaneClaims,
)
from reconciler.ca.xds_tls import XdsCertificate
from reconciler.xds.futures import first_done

if TYPE_CHECKING:
    pass

__all__ = [
    "TOKEN_METADATA_KEY",
    "AUTHORIZATION_HEADER",
    "XdsCall",
    "StreamGuard",
    "current_call",
    "server_credentials",
]

log = logging.getLogger(__name__)

TOKEN_METADATA_KEY = "dataplane.token"
"""Node metadata field with the dataplane token (what `reconciler bootstrap` writes)."""
AUTHORIZATION_HEADER = "authorization"
"""gRPC request header with the dataplane token (what kuma-dp's bootstrap sends)."""
ADS_SERVICE = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
HDS_SERVICE = "/envoy.service.health.v3.HealthDiscoveryService/"


# -- TLS ----------------------------------------------------------------------------------------
def server_credentials(load: Callable[[], XdsCertificate]) -> grpc.ServerCredentials:
    """Server credentials whose certificate is reissued (by `load`) once it is due for renewal;
    gRPC asks before each handshake, so a renewal needs no restart."""
    current = load()

    def config(cert: XdsCertificate) -> Any:
        return grpc.ssl_server_certificate_configuration([(cert.key_pem, cert.cert_chain_pem)])

    def fetch() -> Any:
        nonlocal current
        if time.time() < current.renew_at:
            return None
        try:
            current = load()
        except (OSError, ValueError) as e:  # keep serving the old certificate; retry next handshake
            log.error("xds certificate renewal failed", extra={"error": str(e)})
            return None
        log.info("xds certificate renewed", extra={"not_after": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(current.not_after))})
        return config(current)

    return grpc.dynamic_ssl_server_credentials(config(current), fetch, require_client_authentication=False)


# -- stream guard -------------------------------------------------------------------------------
@dataclass(eq=False, slots=True)
class XdsCall:
    """One ADS stream as admission sees it."""

    metadata: Mapping[str, str]
    """The stream's `authorization` header, if any: the only one admission reads."""
    peer: str
    node_id: str = ""
    claims: DataplaneClaims | None = None
    """The token admission accepted; None when admitted without one (auth off)."""
    closed: asyncio.Future[tuple[grpc.StatusCode, str]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def close(self, code: grpc.StatusCode, message: str) -> None:
        """End the stream with this status (the proxy sees it and reconnects)."""
        if not self.closed.done():
            self.closed.set_result((code, message))


_CURRENT: contextvars.ContextVar[XdsCall | None] = contextvars.ContextVar("xds_call", default=None)


def current_call() -> XdsCall | None:
    """The ADS stream being served by this task, when the server runs behind a StreamGuard."""
    return _CURRENT.get()


class StreamGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Tracks every ADS stream and lets the control plane close one with a status."""

    def __init__(self) -> None:
        self.calls: set[XdsCall] = set()

    def admitted(self) -> list[XdsCall]:
        return [c for c in self.calls if c.node_id]

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith((ADS_SERVICE, HDS_SERVICE)) or handler.stream_stream is None:
            return handler
        behavior = handler.stream_stream
        calls = self.calls

        async def guarded(request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            # Only the header admission reads is kept, for the life of the stream.
            metadata = {
                key: m.value
                for m in context.invocation_metadata() or ()
                if (key := m.key.lower()) == AUTHORIZATION_HEADER and isinstance(m.value, str)
            }
            call = XdsCall(metadata, context.peer())
            calls.add(call)
            reset = _CURRENT.set(call)
            try:
                served = asyncio.ensure_future(behavior(request_iterator, context))
            finally:
                _CURRENT.reset(reset)
            try:
                await first_done(served, call.closed)
                if served.done():
                    served.result()
                    return
                served.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await served
                code, message = call.closed.result()
                await context.abort(code, message)  # logged as the stream's end by the ADS server
            finally:
                calls.discard(call)
                if not served.done():  # this RPC was cancelled: end the stream's task before the RPC ends
                    served.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await served
                elif not served.cancelled():
                    served.exception()  # retrieved: a cancelled RPC's last write may have failed

        return grpc.stream_stream_rpc_method_handler(
            guarded, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
