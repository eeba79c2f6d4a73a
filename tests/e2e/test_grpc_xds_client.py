"""grpcio's own xDS client (`xds:///` with GRPC_XDS_BOOTSTRAP) is a second real xDS client:
it resolves a service through our server, then calls it through the service's Envoy sidecar:
by its `kuma.io/service` (`xds:///greeter`) and by each port of a MeshService, whose API
listeners are named as Kuma names the destination (`xds:///default_greeter___msvc_80`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, free_port

pytestmark = pytest.mark.envoy

METHOD = "/demo.Greeter/Hello"

CLIENT = """\
import sys
import grpc
for target in sys.argv[1:]:
    channel = grpc.insecure_channel("xds:///" + target)
    call = channel.unary_unary("{method}", request_serializer=None, response_deserializer=None)
    reply = call(target.encode(), timeout=20, wait_for_ready=True)
    print(reply.decode())
"""
TARGETS = ["greeter", "default_greeter___msvc_80", "default_greeter___msvc_81"]


@pytest.fixture
def greeter() -> Iterator[int]:
    """A plain gRPC server (no proto needed: raw bytes in, raw bytes out)."""

    def hello(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"hello " + request

    handler = grpc.method_handlers_generic_handler("demo.Greeter", {"Hello": grpc.unary_unary_rpc_method_handler(hello)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0)


def test_grpc_xds_client_resolves_a_service_through_the_control_plane_and_calls_it(tmp_path: Path, greeter: int) -> None:
    remote = ConfigRemote(tmp_path)
    greeter_in = free_port()
    sha = remote.push(
        {
            "mesh.yaml": "type: Mesh\nname: default\n",
            "greeter.yaml": f"""\
type: Dataplane
mesh: default
name: greeter-1
networking:
  address: 127.0.0.1
  inbound:
    - port: {greeter_in}
      servicePort: {greeter}
      tags:
        kuma.io/service: greeter
        kuma.io/protocol: grpc
---
type: MeshService
name: greeter
mesh: default
spec:
  selector:
    dataplaneTags: {{kuma.io/service: greeter}}
  ports:
    - {{name: main, port: 80, targetPort: {greeter_in}, appProtocol: grpc}}
    - {{name: alt, port: 81, targetPort: {greeter_in}, appProtocol: grpc}}
""",
            "client.yaml": f"""\
type: Dataplane
mesh: default
name: grpc-client
networking:
  address: 127.0.0.1
  inbound:
    - port: {free_port()}
      tags:
        kuma.io/service: grpc-client
  outbound:
    - port: {free_port()}
      tags:
        kuma.io/service: greeter
    - port: {free_port()}
      backendRef: {{kind: MeshService, name: greeter, port: 80}}
    - port: {free_port()}
      backendRef: {{kind: MeshService, name: greeter, port: 81}}
""",
        }
    )
    cp = ControlPlaneProcess(remote.bare, tmp_path / "state")
    cp.start()
    envoy = EnvoyProcess(cp, tmp_path / "envoys", name="greeter-1")
    try:
        envoy.start()
        cp.wait_applied(sha, ["default.greeter-1"])
        bootstrap = tmp_path / "xds-bootstrap.json"
        bootstrap.write_text(
            json.dumps(
                {
                    "xds_servers": [
                        {
                            "server_uri": cp.xds,
                            "channel_creds": [{"type": "tls", "config": {"ca_certificate_file": str(cp.ca_cert)}}],
                            "server_features": ["xds_v3"],
                        }
                    ],
                    "node": {
                        "id": "default.grpc-client",
                        "cluster": "grpc-client",
                        "metadata": {"dataplane.token": cp.issue_token("grpc-client")},
                    },
                }
            )
        )
        result = subprocess.run(
            [sys.executable, "-c", CLIENT.format(method=METHOD), *TARGETS],
            env={"GRPC_XDS_BOOTSTRAP": str(bootstrap), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.splitlines() == [f"hello {t}" for t in TARGETS]
        # The calls went through the greeter's sidecar, found via EDS.
        inbound = f"http.inbound_127_0_0_1_{greeter_in}.downstream_rq_completed"
        assert envoy.stats(inbound).get(inbound, 0) >= len(TARGETS)
        status = cp.status()
        assert status is not None
        served = status["proxies"]["default.grpc-client"]["types"]
        # The API listener carries its routes inline, as the sidecars' listeners do: no RDS.
        assert set(served) == {"LDS", "CDS", "EDS"}
        assert not any("nack" in t for t in served.values()), served
    finally:
        envoy.stop()
        cp.stop()
