"""A control plane in this process (its own event loop thread) and an ADS client over real gRPC,
TLS or plaintext, that records everything the server sends and how the stream ended."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import struct_pb2

from reconciler.controlplane import ControlPlane, ServeSettings
from reconciler.xds.resources import CLUSTER, LISTENER, SECRET

__all__ = ["LocalControlPlane", "AdsClient", "MESH", "dataplane_yaml", "revocation_secret"]

MESH = "type: Mesh\nname: default\n"


def dataplane_yaml(name: str, service: str, port: int = 10001, mesh: str = "default") -> str:
    return f"""\
type: Dataplane
mesh: {mesh}
name: {name}
networking:
  address: 127.0.0.1
  inbound:
    - port: {port}
      servicePort: {port + 1000}
      tags:
        kuma.io/service: {service}
        kuma.io/protocol: http
"""


def revocation_secret(ids: Iterable[str], mesh: str = "default") -> str:
    import base64

    data = base64.b64encode(",".join(ids).encode()).decode()
    return f"type: Secret\nmesh: {mesh}\nname: dataplane-token-revocations-{mesh}\ndata: {data}\n"


class LocalControlPlane:
    """`ControlPlane` on a loop in a thread; xDS and API on free ports."""

    def __init__(self, repo: Path, state_dir: Path, **settings: Any) -> None:
        self.settings = ServeSettings(repo=str(repo), state_dir=str(state_dir), xds_port=0, api_port=0, poll_interval=0.2, **settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cp = ControlPlane(self.settings)
        self.call(self.cp.start())

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.cp.xds_port}"

    @property
    def ca_pem(self) -> bytes:
        return (Path(self.settings.state_dir) / "xds-tls" / "ca.crt").read_bytes()

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def applied(self) -> str | None:
        applied = self.cp.store.applied
        return applied.revision if applied else None

    def wait_applied(self, sha: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.applied() != sha:
            if time.monotonic() > deadline:
                raise AssertionError(f"{sha[:12]} not applied; last attempt: {self.cp.store.last_attempt}")
            time.sleep(0.05)

    def add_resources(self, node_id: str, *items: Any) -> None:
        """Serve `items` to `node_id` besides its generated config (a Secret, to see where it goes)."""
        from reconciler.xds.resources import ProxyResources

        async def add() -> None:
            config = self.cp.cache.fetch(node_id)
            assert config is not None, f"no config for {node_id}"
            self.cp.cache.set(node_id, ProxyResources.build([*config.resources, *items]), config.revision)

        self.call(add())

    def stop(self) -> None:
        self.call(self.cp.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class AdsClient:
    """One ADS stream, as Envoy would open it: first request with the node, then the others."""

    def __init__(self, target: str, *, ca_pem: bytes | None = None, delta: bool = False, headers: Sequence[tuple[str, str]] = ()) -> None:
        self.channel = (
            grpc.secure_channel(target, grpc.ssl_channel_credentials(ca_pem)) if ca_pem is not None else grpc.insecure_channel(target)
        )
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        self.delta = delta
        self.requests: queue.Queue[Any] = queue.Queue()
        self.responses: list[Any] = []
        self.arrived = threading.Condition()
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        method = stub.DeltaAggregatedResources if delta else stub.StreamAggregatedResources
        self.call = method(iter(self.requests.get, None), metadata=tuple(headers))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for response in self.call:
                with self.arrived:
                    self.responses.append(response)
                    self.arrived.notify_all()
        except grpc.RpcError as e:
            self.error = e
        finally:
            self.ended.set()
            with self.arrived:
                self.arrived.notify_all()

    def open(self, node_id: str, *, token: str | None = None, dataplane: str | None = None, secrets: Sequence[str] = ()) -> None:
        """Ask for listeners, clusters and the named secrets, presenting `token` in node metadata."""
        subscriptions: list[tuple[str, list[str]]] = [(LISTENER, []), (CLUSTER, []), (SECRET, list(secrets))]
        for i, (type_url, names) in enumerate(subscriptions):
            req: Any = (
                discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=names)
                if self.delta
                else discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=names)
            )
            if i == 0:
                req.node.id = node_id
                fields = {}
                if token is not None:
                    fields["dataplane.token"] = token
                if dataplane is not None:
                    fields["dataplane.resource"] = dataplane
                req.node.metadata.CopyFrom(struct_pb2.Struct(fields={k: struct_pb2.Value(string_value=v) for k, v in fields.items()}))
            self.requests.put(req)

    def wait_end(self, timeout: float = 10) -> grpc.RpcError:
        """The stream's final status (it must end within `timeout`)."""
        if not self.ended.wait(timeout):
            raise AssertionError(f"stream still open after {timeout}s; received {self.types()}")
        assert self.error is not None
        return self.error

    def wait_types(self, *type_urls: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not set(type_urls) <= set(self.types()):
                left = deadline - time.monotonic()
                if left <= 0 or self.ended.is_set():
                    raise AssertionError(f"got {self.types()}, wanted {type_urls}; error: {self.error}")
                self.arrived.wait(left)

    def types(self) -> list[str]:
        return [r.type_url for r in self.responses]

    def resources(self, type_url: str) -> list[Any]:
        out = []
        for r in self.responses:
            if r.type_url == type_url:
                out += [x.resource if self.delta else x for x in r.resources]
        return out

    def close(self) -> None:
        self.requests.put(None)
        self.channel.close()

    def drop(self) -> None:
        """The proxy vanishes: its connection closes with no half-close before it (`close` half-closes
        first, and a server that sees the half-close alone answers OK instead of counting a cancel)."""
        self.channel.close()
        self.requests.put(None)
