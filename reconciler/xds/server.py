"""The Aggregated Discovery Service on grpc.aio: state-of-the-world and delta xDS.

This module is the gRPC service: admission, reading requests, and the loop that hands each
request and each config change to the stream's protocol handler. The protocol itself, per
stream and per type (nonce, versions, subscriptions, ACK/NACK, Envoy's update order), lives in
xds/sotw.py and xds/delta.py; what they share (callbacks, XdsRejected) in xds/protocol.py.

The server sees configuration only through a `ConfigWatcher` (xds/cache.py) and reports
what happens on each stream through `StreamCallbacks` (xds/protocol.py).

Admission: a stream must send its first request (the one with the node) within
`first_request_timeout`, else it is closed with DEADLINE_EXCEEDED, so an idle connection
does not hold a stream forever. `on_open`, and the watcher at any later point, refuse a
stream by raising `XdsRejected`; any other exception in `on_open` is logged here and the
proxy gets INTERNAL with a short message, never the exception's text. Bytes that are not a
request end the stream with INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc
from google.protobuf.message import DecodeError

from reconciler.xds.cache import ConfigWatcher
from reconciler.xds.delta import DeltaStream
from reconciler.xds.futures import first_done
from reconciler.xds.protocol import MALFORMED, NoCallbacks, StreamCallbacks, XdsRejected
from reconciler.xds.security import current_call
from reconciler.xds.sotw import SotwStream
from reconciler.xds.stream_end import HALF_CLOSE_GRACE, PROXY_CLOSED, PROXY_GONE_DURING_WRITE, StreamEnd, cancelled_end, log_end

__all__ = ["AdsServer", "StreamCallbacks", "XdsRejected", "NoCallbacks", "add_ads_server", "FIRST_REQUEST_TIMEOUT"]

log = logging.getLogger(__name__)

FIRST_REQUEST_TIMEOUT = 15.0
"""Seconds a new stream has to send its first request. Envoy sends it as soon as the stream
opens; a proxy under heavy load still makes it in well under this."""


ADMISSION_FAILED = "admission failed: internal error in the control plane (see its log)"


class _Ended(Exception):
    """How a stream ended on an exception (`cause`, re-raised to gRPC): its node id and end."""

    def __init__(self, node_id: str, end: StreamEnd, cause: BaseException) -> None:
        super().__init__(end.cause)
        self.node_id, self.end, self.cause = node_id, end, cause


@dataclass(slots=True)
class _Stream:
    node_id: str = ""
    end: StreamEnd = PROXY_CLOSED


class AdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]  # generated gRPC code is untyped
    def __init__(
        self,
        watcher: ConfigWatcher,
        callbacks: StreamCallbacks | None = None,
        *,
        control_plane_id: str = "mesh-reconciler",
        first_request_timeout: float = FIRST_REQUEST_TIMEOUT,
    ) -> None:
        self.watcher = watcher
        self.callbacks: StreamCallbacks = callbacks or NoCallbacks()
        self.control_plane = base_pb2.ControlPlane(identifier=control_plane_id)
        self.first_request_timeout = first_request_timeout
        self.streams = 0
        self.stopping = False
        """Set when the gRPC server stops (grpc_setup), so the streams it cancels say so."""

    async def StreamAggregatedResources(self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await self._serve(context, "sotw")

    async def DeltaAggregatedResources(self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await self._serve(context, "delta")

    async def _serve(self, context: grpc.aio.ServicerContext[Any, Any], mode: str) -> None:
        stream = _Stream()
        try:
            await self._open_and_serve(context, mode, stream)
        except asyncio.CancelledError:
            stream.end = self._cancelled(context)
            raise
        except _Ended as e:
            stream.node_id, stream.end = stream.node_id or e.node_id, e.end
            raise e.cause from None
        finally:
            log_end(stream.end, mode=mode, node_id=stream.node_id, peer=context.peer())
            self.callbacks.on_stream_end(mode, stream.end.code.name)

    async def _open_and_serve(self, context: grpc.aio.ServicerContext[Any, Any], mode: str, served: _Stream) -> None:
        """Serve one stream, noting its node id and how it ended in `served`; an end on an
        exception (an abort, a bug) raises `_Ended`, which carries both."""
        try:
            first = await asyncio.wait_for(context.read(), self.first_request_timeout)
        except TimeoutError:
            seconds = f"{self.first_request_timeout:g}"
            await self._abort(
                context, "", grpc.StatusCode.DEADLINE_EXCEEDED, f"no DiscoveryRequest within {seconds}s of opening the stream"
            )
        except DecodeError:
            await self._abort(context, "", MALFORMED.code, MALFORMED.message)
        if first is grpc.aio.EOF:
            await asyncio.sleep(HALF_CLOSE_GRACE)  # a reset stream is cancelled meanwhile
            return
        node_id = served.node_id = await self._admit(context, first, mode)
        self.streams += 1
        try:
            stream: SotwStream | DeltaStream = (SotwStream if mode == "sotw" else DeltaStream)(self, node_id, context)
            pending: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            pending.set_result(first)
            del first  # not kept for the life of the stream (Envoy's node lists its extensions: kilobytes)
            await self._loop(stream, context, pending)
        except XdsRejected as e:  # the watcher no longer admits this stream
            await self._abort(context, node_id, e.code, e.message)
        except Exception as e:
            # A proxy that goes away while a response is being written fails that write inside
            # gRPC; the stream is over either way, which is not an error of the control plane.
            # Its cancellation may be seen a moment after the failed write (under load): wait for
            # it as for a half-close (the task is cancelled meanwhile, or the context says so).
            if not (context.cancelled() or context.done()):
                await asyncio.sleep(HALF_CLOSE_GRACE)
            if not (context.cancelled() or context.done()):
                raise _Ended(
                    node_id, StreamEnd(grpc.StatusCode.UNKNOWN, f"error in the control plane: {type(e).__name__}: {e}", True), e
                ) from e
            served.end = PROXY_GONE_DURING_WRITE
        finally:
            self.streams -= 1
            self.callbacks.on_close(node_id, mode)

    @staticmethod
    async def _abort(context: grpc.aio.ServicerContext[Any, Any], node_id: str, code: grpc.StatusCode, message: str) -> NoReturn:
        try:
            await context.abort(code, message)
        except BaseException as e:  # how grpc.aio unwinds an aborted RPC
            raise _Ended(node_id, StreamEnd(code, message, error=True), e) from None
        raise AssertionError("context.abort returned")  # pragma: no cover

    def _cancelled(self, context: grpc.aio.ServicerContext[Any, Any]) -> StreamEnd:
        call = current_call()
        if call is not None and call.closed.done():  # closed by the control plane (StreamGuard)
            code, message = call.closed.result()
            return StreamEnd(code, message, error=True)
        return cancelled_end(context, self.stopping)

    async def _admit(self, context: grpc.aio.ServicerContext[Any, Any], first: Any, mode: str) -> str:
        """The node id `on_open` admits; otherwise the stream is aborted with a short status."""
        try:
            return await self.callbacks.on_open(first.node, mode)
        except XdsRejected as e:
            await self._abort(context, str(first.node.id), e.code, e.message)
        except Exception:  # a bug must not hand the proxy a Python exception text (gRPC's UNKNOWN)
            log.exception("admission failed", extra={"node": first.node.id})
            await self._abort(context, str(first.node.id), grpc.StatusCode.INTERNAL, ADMISSION_FAILED)

    @staticmethod
    async def _next_request(context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        """The stream's next request; MALFORMED for bytes that do not decode; None once the proxy
        is gone or has half-closed. One read at a time, no queue: gRPC holds what comes meanwhile."""
        try:
            msg = await context.read()
        except DecodeError:
            return MALFORMED
        except (asyncio.CancelledError, grpc.aio.AioRpcError, grpc.RpcError):
            return None
        if msg is grpc.aio.EOF:
            await asyncio.sleep(HALF_CLOSE_GRACE)  # a reset stream is cancelled meanwhile
            return None
        return msg

    async def _loop(
        self, stream: SotwStream | DeltaStream, context: grpc.aio.ServicerContext[Any, Any], next_request: asyncio.Future[Any]
    ) -> None:
        """Hand each request (the first one is `next_request`) and each change of the node's
        config to the stream, one at a time, requests first."""
        generation = stream.config.generation if stream.config else -1
        if stream.config is not None:
            self.callbacks.on_config(stream.node_id, stream.config)
        change = self.watcher.changed(stream.node_id, generation)
        try:
            while True:
                await first_done(next_request, change)
                if next_request.done():
                    req = next_request.result()
                    if req is None:
                        return
                    if isinstance(req, XdsRejected):
                        raise req
                    await stream.on_request(req)
                    del req
                    next_request = asyncio.ensure_future(self._next_request(context))
                if change.done():
                    config = self.watcher.fetch(stream.node_id)
                    await stream.on_config(config)
                    if config is not None:
                        generation = config.generation
                        self.callbacks.on_config(stream.node_id, config)
                    change = self.watcher.changed(stream.node_id, generation)
        finally:
            next_request.cancel()  # `change` may be shared with the node's other streams: never cancelled


def add_ads_server(server: grpc.aio.Server, ads: AdsServer) -> None:
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(ads, server)
