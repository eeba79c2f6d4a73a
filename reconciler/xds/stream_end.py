"""How an ADS stream ended, said once per stream: node id, SotW or delta, status code and cause.

grpc.aio tells a servicer little about why a stream stops: a proxy that resets its stream,
closes its connection or lets its deadline pass, and a server that stops, all first show
as the end of the requests (EOF) and then as the cancellation of the servicer's task;
`ServicerContext.cancelled()` stays False in every case (grpc 1.85). So the cause is
inferred: a deadline leaves no time remaining, a stopping server says so (`AdsServer.stopping`),
and any other cancellation is the proxy's. A stream whose requests end without a cancellation
soon after was half-closed by the proxy (Envoy never does that; a test client may).

Normal ends (the proxy went away, the server stopped) are logged at info, errors (refused,
malformed, no first request, an exception in the control plane) at warning; the server's
callbacks count them by mode and code (`reconciler_xds_stream_ends_total`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["StreamEnd", "log_end", "cancelled_end", "HALF_CLOSE_GRACE"]

# Logged under the server's name, as the streams' other lines.
log = logging.getLogger("reconciler.xds.server")

HALF_CLOSE_GRACE = 0.2
"""Seconds the server waits after a proxy's requests end for the cancellation that follows
when the proxy reset the stream; none means a half-close, answered with OK."""


@dataclass(frozen=True, slots=True)
class StreamEnd:
    code: grpc.StatusCode
    cause: str
    error: bool = False
    """Logged at warning: the stream ended on something that was not a proxy's normal leave."""


PROXY_CLOSED = StreamEnd(grpc.StatusCode.OK, "proxy closed its side of the stream")
PROXY_GONE_DURING_WRITE = StreamEnd(grpc.StatusCode.CANCELLED, "proxy went away while a response was written")


def cancelled_end(context: grpc.aio.ServicerContext[Any, Any], stopping: bool) -> StreamEnd:
    """Why a stream's task was cancelled (see the module docstring)."""
    if stopping:
        return StreamEnd(grpc.StatusCode.CANCELLED, "server shutdown")
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return StreamEnd(grpc.StatusCode.DEADLINE_EXCEEDED, "the proxy's deadline for the stream passed")
    return StreamEnd(grpc.StatusCode.CANCELLED, "proxy cancelled the stream or closed its connection")


def log_end(end: StreamEnd, *, mode: str, node_id: str, peer: str) -> None:
    """The one line a stream's end gets (its count is the callbacks' `on_stream_end`)."""
    extra = {"node": node_id or "-", "mode": mode, "code": end.code.name, "cause": end.cause, "peer": peer}
    log.log(logging.WARNING if end.error else logging.INFO, "stream ended", extra=extra)
